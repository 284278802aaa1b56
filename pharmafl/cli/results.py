"""A partner's results by its own ids: ``pharmafl tasks``, ``predict`` and ``evaluate``.

Thin wrappers: parse, call one library function, print. ``pharmafl.cli.model`` registers
them (next to ``baseline`` and ``pooled``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="local, federated, pooled or a saved model folder (default: federated when "
        "trained, else local).",
    ),
]


def tasks(
    partner_dir: Annotated[Path, typer.Argument(help="Partner folder holding prepared/.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
    all_tasks: Annotated[
        bool, typer.Option("--all", help="Also list candidate tasks below the training quorum.")
    ] = False,
) -> None:
    """List the partner's tasks by its own assay ids, with their labels per fold."""
    from pharmafl.data.tasklist import render_task_list, task_list
    from pharmafl.layout import PartnerLayout

    tl = task_list(PartnerLayout(partner_dir).prepared, untrained=all_tasks)
    typer.echo(tl.model_dump_json(indent=2) if json_out else render_task_list(tl), nl=json_out)


def predict(
    partner_dir: Annotated[
        Path, typer.Argument(help="Partner folder (consortium parameters, key, model).")
    ],
    input_file: Annotated[
        Path, typer.Option("--input", help="CSV/TSV with a smiles column (+ ids), or an SDF.")
    ],
    out_file: Annotated[Path, typer.Option("--out", help="Output CSV (sidecars beside it).")],
    model: ModelOption = None,
    id_column: Annotated[
        list[str] | None,
        typer.Option(
            "--id-column",
            help="Input column to keep in the output (repeatable; default: columns named like "
            "ID, Sample ID, compound_id, Name, Compound).",
        ),
    ] = None,
    smiles_column: Annotated[
        str | None,
        typer.Option("--smiles-column", help="The structure column (default: smiles, …)."),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option("--encoding", help="Text encoding of the input (default UTF-8)."),
    ] = None,
    long: Annotated[
        bool, typer.Option("--long", help="One row per compound and task instead.")
    ] = False,
    mc_samples: Annotated[
        int, typer.Option("--mc-samples", min=0, help="MC-dropout passes (0 = off).")
    ] = 0,
    embeddings: Annotated[
        bool, typer.Option("--embeddings", help="Also write trunk embeddings.")
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Processes for descriptors (0 = all).")
    ] = 1,
    head: Annotated[
        str | None, typer.Option("--head", help="Head to predict with (default: this partner's).")
    ] = None,
) -> None:
    """Predict new structures; columns are named by the partner's assay ids and thresholds."""
    from pharmafl.model.predict import predict_structures

    result = predict_structures(
        partner_dir,
        input_file,
        out_file,
        model=model,
        head=head,
        id_columns=id_column or None,
        smiles_column=smiles_column,
        encoding=encoding,
        long=long,
        mc_samples=mc_samples,
        embeddings=embeddings,
        workers=workers,
    )
    assert result.model is not None
    typer.echo(f"model: {result.model.describe()}")
    typer.echo(
        f"predicted {result.n_ok} of {result.n_input} structures "
        f"({result.n_failed} failed, see status/message): {', '.join(map(str, result.files))}"
    )


def evaluate(
    partner_dir: Annotated[
        Path, typer.Argument(help="Partner folder (config, prepared/, models).")
    ],
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            help="New measurements in the shape of your export: NEW replaces the one file your "
            "config reads; OLD=NEW replaces the config's file OLD (repeat for each).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="A partner config for the new files instead of --input."),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="local, federated, pooled or a model folder (repeatable; default: every one "
            "trained).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="JSON to write (default: <first input>-evaluation.json)."),
    ] = None,
    min_actives: Annotated[
        int, typer.Option(min=1, help="New actives a classification task needs.")
    ] = 5,
    min_inactives: Annotated[
        int, typer.Option(min=1, help="New inactives a classification task needs.")
    ] = 5,
    min_values: Annotated[
        int, typer.Option(min=2, help="New uncensored values a regression task needs.")
    ] = 10,
    keep_training_overlap: Annotated[
        bool,
        typer.Option(help="Also score compounds identical to training compounds."),
    ] = False,
    resamples: Annotated[int, typer.Option(min=1, help="Compound bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Processes for descriptors (0 = all).")
    ] = 1,
) -> None:
    """Score your models on newly measured compounds: per task by your assay ids, means, and
    federated − local with 95 % bootstrap intervals over tasks and over compounds."""
    from pharmafl.common.errors import ConfigError
    from pharmafl.evaluation.newdata import LabelQuorum
    from pharmafl.partner.evaluate import evaluate_new_measurements, write_evaluation
    from pharmafl.partner.evaluate_text import render_evaluation

    if not inputs and config is None:
        raise ConfigError(
            "no new measurements given.", fix="pass --input FILE (or --config NEW_CONFIG)."
        )
    doc = evaluate_new_measurements(
        partner_dir,
        inputs or [],
        config=config,
        models=model or None,
        quorum=LabelQuorum(
            min_actives=min_actives, min_inactives=min_inactives, min_values=min_values
        ),
        keep_training_overlap=keep_training_overlap,
        resamples=resamples,
        seed=seed,
        workers=workers,
    )
    first = Path((inputs or [str(config)])[0].split("=", 1)[-1])
    dest = out or first.with_name(f"{first.name.split('.')[0]}-evaluation.json")
    typer.echo(render_evaluation(doc), nl=False)
    typer.echo(f"written: {write_evaluation(doc, dest)}")


def register(app: typer.Typer) -> None:
    """Attach ``tasks``, ``predict`` and ``evaluate`` to ``app``."""
    app.command("tasks")(tasks)
    app.command("predict")(predict)
    app.command("evaluate")(evaluate)
