"""Simulated consortia: layout, determinism, key handling, and clean ingestion per partner."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pharmafl.chem import consistency_hash
from pharmafl.common.errors import ConfigError, PharmaFLError
from pharmafl.common.params import load_consortium_parameters
from pharmafl.common.secret import load_consortium_key
from pharmafl.ingest import find_partner_config, ingest_partner
from pharmafl.simulate import (
    AUXILIARY_NAME,
    SimulationManifest,
    SimulationResult,
    SimulationSpec,
    build_spec,
    simulate_consortium,
)

VALUE_REASONS = {
    "empty_value",
    "non_numeric_value",
    "non_positive_value",
    "invalid_binary_value",
    "empty_smiles",
    "unparseable_structure",
    "compound_rejected",
    "no_activities",
}


def _files(root: Path) -> dict[str, bytes]:
    """Every file's bytes, except what depends on the (random) key: the key itself, and the
    reference hash in consortium.json and simulation.json."""
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name == "key.json":
            continue
        data = p.read_bytes()
        if p.suffix == ".json":
            doc = json.loads(data)
            doc.pop("reference_hash")
            data = json.dumps(doc, sort_keys=True).encode()
        out[str(p.relative_to(root))] = data
    return out


def _check_layout(result, n: int) -> None:
    out = result.out_dir
    names = sorted(result.partner_dirs)
    assert names == sorted(["alpha", "bravo", "charlie", "delta", "echo"][:n])
    assert sorted(p.name for p in (out / "partners").iterdir()) == names
    assert sorted(p.name for p in result.operator_dir.iterdir()) == [
        "README.txt",
        "consortium.json",
    ]
    assert not list(result.operator_dir.rglob("key*")), "the operator must never hold the key"
    keys = {p.read_bytes() for p in (out / "partners").glob("*/key.json")}
    assert len(keys) == 1, "all partners share one key"
    for d in result.partner_dirs.values():
        mode = stat.S_IMODE((d / "key.json").stat().st_mode)
        assert mode == 0o600
        assert (d / "consortium.json").read_bytes() == (
            result.operator_dir / "consortium.json"
        ).read_bytes()
    manifest = SimulationManifest.model_validate_json((out / "simulation.json").read_text())
    assert manifest == result.manifest
    assert "key" not in json.loads((out / "simulation.json").read_text())


def _ingest_all(result) -> dict[str, object]:
    out = {}
    for name, d in result.partner_dirs.items():
        r = ingest_partner(d)
        assert len(r.t1) > 0 and len(r.t2) > 0 and len(r.t0) > 0
        assert set(r.rejections["reason"]) <= VALUE_REASONS
        out[name] = r
    return out


def test_source_file_simulation_is_complete_and_ingests(tmp_path: Path, fsmol_sample: Path) -> None:
    spec = SimulationSpec(source=str(fsmol_sample), partners=4, seed=13)  # no partner empty
    result = simulate_consortium(tmp_path / "c", spec)
    _check_layout(result, 4)
    shapes = [p.shape for p in result.manifest.partners]
    assert shapes == ["chembl_csv", "sdf_pic50", "parquet_um", "tsv_molar"]
    assert [p.config_file for p in result.manifest.partners][-1] == "partner.yaml"
    ingested = _ingest_all(result)
    # every measurement of the source is exported by exactly one partner and read back
    assert sum(p.measurements for p in result.manifest.partners) == 268
    assert sum(r.counts["measurements_read"] for r in ingested.values()) == 268
    # the consortium's published hash is what each partner computes with its key
    d = result.partner_dirs["bravo"]
    cfg = find_partner_config(d)
    params = load_consortium_parameters(cfg.parameters_path(d))
    key = load_consortium_key(cfg.key_path(d))
    assert params.reference_hash == consistency_hash(params, key)
    assert result.manifest.reference_hash == params.reference_hash


def test_an_auxiliary_partner_is_added_without_changing_the_partners(
    tmp_path: Path, fsmol_sample: Path
) -> None:
    base = SimulationSpec(source=str(fsmol_sample), partners=2, max_compounds=40, seed=1)
    plain = simulate_consortium(tmp_path / "plain", base)
    spec = base.model_copy(update={"auxiliary_compounds": 1000})
    result = simulate_consortium(tmp_path / "aux", spec)
    names = [p.name for p in result.manifest.partners]
    assert names == ["alpha", "bravo", AUXILIARY_NAME]
    assert [p.auxiliary for p in result.manifest.partners] == [False, False, True]
    assert result.manifest.partners[:2] == plain.manifest.partners  # members untouched
    assert sum(p.measurements for p in result.manifest.partners) == 268  # the rest is public
    ingested = _ingest_all(result)
    assert ingested[AUXILIARY_NAME].counts["measurements_read"] > 0


def test_an_auxiliary_partner_can_take_its_assays_from_another_public_file(
    tmp_path: Path, fsmol_sample: Path, tox_like: Path
) -> None:
    import pandas as pd

    other = pd.read_csv(fsmol_sample, dtype=str)
    other["assay_chembl_id"] = "PUBLIC_" + other["assay_chembl_id"]  # other targets' assays
    other_file = tmp_path / "other.csv"
    other.to_csv(other_file, index=False)
    base = SimulationSpec(source=str(fsmol_sample), partners=2, max_compounds=40, seed=1)
    plain = simulate_consortium(tmp_path / "plain", base)
    spec = base.model_copy(
        update={"auxiliary_compounds": 1000, "auxiliary_source": str(other_file)}
    )
    result = simulate_consortium(tmp_path / "aux", spec)
    assert result.manifest.partners[:2] == plain.manifest.partners  # members untouched
    aux = result.manifest.partners[2]
    assert aux.auxiliary and aux.measurements == len(other)  # all of the other file
    ingested = _ingest_all(result)
    assays = set(ingested[AUXILIARY_NAME].assay_ids["original_id"].astype(str))
    assert assays and all("PUBLIC_" in a for a in assays)
    # the same file as the partners': only the assays no partner kept, as without a source
    same = base.model_copy(
        update={"auxiliary_compounds": 1000, "auxiliary_source": str(fsmol_sample)}
    )
    assert simulate_consortium(tmp_path / "same", same).manifest.partners[2].measurements == (
        268 - sum(p.measurements for p in plain.manifest.partners)
    )
    wrong = base.model_copy(update={"auxiliary_compounds": 1000, "auxiliary_source": str(tox_like)})
    with pytest.raises(ConfigError, match="same shape"):
        simulate_consortium(tmp_path / "wrong", wrong)
    with pytest.raises(ConfigError, match="auxiliary_source"):
        build_spec(source=str(fsmol_sample), auxiliary_source=str(other_file))


def test_a_free_rider_keeps_its_compounds_and_loses_its_labels(
    tmp_path: Path, fsmol_sample: Path
) -> None:
    base = SimulationSpec(source=str(fsmol_sample), partners=2, max_compounds=40, seed=1)
    plain = simulate_consortium(tmp_path / "plain", base)
    spec = base.model_copy(update={"free_riders": ("bravo",)})
    rider = simulate_consortium(tmp_path / "rider", spec)
    assert [p.free_rider for p in rider.manifest.partners] == [False, True]
    for a, b in zip(plain.manifest.partners, rider.manifest.partners, strict=True):
        assert a.model_dump(exclude={"free_rider"}) == b.model_dump(exclude={"free_rider"})

    def raw(result: SimulationResult, name: str) -> list[bytes]:
        return [f.read_bytes() for f in sorted((result.partner_dirs[name] / "raw").rglob("*"))]

    assert raw(rider, "alpha") == raw(plain, "alpha")
    assert raw(rider, "bravo") != raw(plain, "bravo")  # only the free rider's results differ
    ingested = _ingest_all(rider)
    assert ingested["bravo"].counts["measurements_read"] > 0


def test_free_riders_must_be_partners_and_not_all_of_them() -> None:
    with pytest.raises(ConfigError, match="free riders"):
        build_spec(partners=2, free_riders=("charlie",))
    with pytest.raises(ConfigError, match="free riders"):
        build_spec(partners=3, free_riders=("alpha", "alpha"))
    with pytest.raises(ConfigError, match="nothing to learn"):
        build_spec(partners=2, free_riders=("alpha", "bravo"))


def test_same_seed_same_files_but_a_fresh_key(tmp_path: Path, fsmol_sample: Path) -> None:
    spec = SimulationSpec(source=str(fsmol_sample), partners=3, seed=2)
    a = simulate_consortium(tmp_path / "a", spec)
    b = simulate_consortium(tmp_path / "b", spec)
    assert _files(a.out_dir) == _files(b.out_dir)
    key_a = (a.out_dir / "partners/alpha/key.json").read_bytes()
    assert key_a != (b.out_dir / "partners/alpha/key.json").read_bytes(), "keys are random"


def test_a_given_key_is_handed_to_every_partner_and_reproduces_the_run(
    tmp_path: Path, fsmol_sample: Path
) -> None:
    key_file = tmp_path / "consortium.key.json"
    key_file.write_text('{"key": "rehearsal-key-0001"}\n')
    key_file.chmod(0o600)
    spec = SimulationSpec(source=str(fsmol_sample), partners=3, seed=2)
    a = simulate_consortium(tmp_path / "a", spec, key_file=key_file)
    b = simulate_consortium(tmp_path / "b", spec, key_file=key_file)
    for name, pdir in a.partner_dirs.items():
        key_path = pdir / "key.json"
        assert key_path.read_bytes() == key_file.read_bytes()
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        assert (b.partner_dirs[name] / "key.json").read_bytes() == key_file.read_bytes()
    assert not (a.operator_dir / "key.json").exists()
    # same key: the key-dependent reference hash is the same too, and it is the key's
    assert a.manifest.reference_hash == b.manifest.reference_hash
    params = load_consortium_parameters(a.operator_dir / "consortium.json")
    assert params.reference_hash == consistency_hash(params, load_consortium_key(key_file))
    fresh = simulate_consortium(tmp_path / "fresh", spec)
    assert fresh.manifest.reference_hash != a.manifest.reference_hash


def test_a_bad_given_key_stops_before_writing(tmp_path: Path, fsmol_sample: Path) -> None:
    spec = SimulationSpec(source=str(fsmol_sample), partners=2)
    open_key = tmp_path / "open.key.json"
    open_key.write_text('{"key": "k"}\n')
    open_key.chmod(0o644)
    with pytest.raises(PharmaFLError, match="accessible by group or others") as err:
        simulate_consortium(tmp_path / "c", spec, key_file=open_key)
    assert "chmod 600" in (err.value.fix or "")
    empty = tmp_path / "empty.key.json"
    empty.write_text('{"key": ""}\n')
    empty.chmod(0o600)
    with pytest.raises(PharmaFLError, match="no non-empty"):
        simulate_consortium(tmp_path / "c", spec, key_file=empty)
    assert not (tmp_path / "c").exists()


def test_existing_folder_is_refused_unless_forced(tmp_path: Path, fsmol_sample: Path) -> None:
    out = tmp_path / "c"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    spec = SimulationSpec(source=str(fsmol_sample), partners=2)
    with pytest.raises(ConfigError, match="not empty"):
        simulate_consortium(out, spec)
    assert (out / "keep.txt").read_text() == "mine"
    simulate_consortium(out, spec, force=True)
    assert not (out / "keep.txt").exists() and (out / "operator").is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp left over"


def test_a_partner_without_data_stops_before_writing(tmp_path: Path, fsmol_sample: Path) -> None:
    spec = SimulationSpec(source=str(fsmol_sample), partners=20)
    with pytest.raises(ConfigError, match="would get no measurements"):
        simulate_consortium(tmp_path / "c", spec)
    assert not (tmp_path / "c").exists()


def test_binary_wide_source(tmp_path: Path, tox_like: Path) -> None:
    result = simulate_consortium(
        tmp_path / "c", SimulationSpec(source=str(tox_like), partners=3, overlap=0.3, seed=1)
    )
    assert result.manifest.dataset_kind == "binary"
    for r in _ingest_all(result).values():
        assert set(r.t1["standard_value"]) <= {-1.0, 1.0}
        assert r.t0["is_binary"].all() and not r.t0["use_in_regression"].any()
        assert r.rejections.empty


def test_adme_wide_source(tmp_path: Path, adme_like: Path) -> None:
    result = simulate_consortium(tmp_path / "c", SimulationSpec(source=str(adme_like), partners=2))
    for r in _ingest_all(result).values():
        assert (r.t0["assay_type"] == "ADME").all()
        assert (r.t1["standard_value"] < 0).any(), "log values pass through unconverted"


def test_spec_bounds_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="partners"):
        build_spec(partners=1)
    with pytest.raises(ConfigError, match="strategy"):
        build_spec(strategy="random")


def test_cli_simulate(tmp_path: Path, fsmol_sample: Path) -> None:
    from pharmafl.cli.main import app

    runner = CliRunner()
    args = ["consortium", "simulate", "--source", str(fsmol_sample), "--partners", "2"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "c"), "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert "alpha" in result.output and "chembl_csv" in result.output
    again = runner.invoke(app, [*args, "--out", str(tmp_path / "c")])
    assert isinstance(again.exception, PharmaFLError)
    assert "--force" in str(again.exception)
    key_file = tmp_path / "k.json"
    key_file.write_text('{"key": "cli-rehearsal"}\n')
    key_file.chmod(0o600)
    keyed = runner.invoke(app, [*args, "--out", str(tmp_path / "k"), "--key", str(key_file)])
    assert keyed.exit_code == 0, keyed.output
    assert (tmp_path / "k/partners/bravo/key.json").read_bytes() == key_file.read_bytes()
    aux = [*args, "--auxiliary-source", str(fsmol_sample), "--out", str(tmp_path / "a")]
    alone = runner.invoke(app, aux)  # a source without a size
    assert isinstance(alone.exception, ConfigError) and "auxiliary_source" in str(alone.exception)
    sized = runner.invoke(app, [*aux, "--auxiliary-compounds", "1000", "--max-compounds", "40"])
    assert sized.exit_code == 0, sized.output
    manifest = SimulationManifest.model_validate_json((tmp_path / "a/simulation.json").read_text())
    assert manifest.spec.auxiliary_source == str(fsmol_sample)
    assert [p.name for p in manifest.partners] == ["alpha", "bravo", AUXILIARY_NAME]


# --- the real public datasets ------------------------------------------------------------


# Reading the 410k-row FS-Mol file and writing an SDF of 1,500 molecules takes ~5-8 s here.
@pytest.fixture(scope="module")
def fsmol_consortium(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("fsmol") / "c"
    return simulate_consortium(out, SimulationSpec(partners=3, max_compounds=1500, seed=7))


@pytest.mark.slow
def test_fsmol_three_partners(fsmol_consortium) -> None:
    result = fsmol_consortium
    _check_layout(result, 3)
    summaries = result.manifest.partners
    assert all(0 < p.compounds <= 1500 for p in summaries)
    assert result.manifest.compounds_shared > 0, "partners overlap on compounds"
    ingested = _ingest_all(result)
    smiles = [set(r.t2["smiles"]) for r in ingested.values()]
    # the same compounds reach different partners through different export shapes
    assert smiles[0] & smiles[2]
    for r in ingested.values():
        assert r.t1["standard_value"].between(-1, 15).all()
        assert r.counts["assays"] >= 20


@pytest.mark.slow
def test_fsmol_is_deterministic_for_a_seed(fsmol_consortium, tmp_path: Path) -> None:
    again = simulate_consortium(
        tmp_path / "c", SimulationSpec(partners=3, max_compounds=1500, seed=7)
    )
    assert _files(again.out_dir) == _files(fsmol_consortium.out_dir)


@pytest.mark.slow
def test_fsmol_family_strategy(tmp_path: Path) -> None:
    spec = SimulationSpec(partners=2, max_compounds=300, seed=1, strategy="family")
    result = simulate_consortium(tmp_path / "c", spec)
    assert all(p.compounds <= 300 for p in result.manifest.partners)


@pytest.mark.parametrize("dataset", ["tox21", "adme"])
def test_builtin_wide_datasets(tmp_path: Path, dataset: str) -> None:
    spec = SimulationSpec(dataset=dataset, partners=2, max_compounds=200, seed=3)
    result = simulate_consortium(tmp_path / "c", spec)
    assert result.manifest.dataset_kind == ("binary" if dataset == "tox21" else "adme")
    _ingest_all(result)
