"""The printed table of ``pharmafl evaluate`` (the JSON document holds the same numbers)."""

from __future__ import annotations

from collections.abc import Sequence

from pharmafl.evaluation.newdata import (
    AggregateScores,
    ModelComparison,
    TaskScores,
)
from pharmafl.partner.evaluation_report import NewDataEvaluation

_SHORT = {"roc_auc": "ROC-AUC", "auc_pr": "AUC-PR", "r2": "R²", "rmse": "RMSE"}
#: Shown after a metric where a negative difference is the better one.
_LOWER_BETTER = {"rmse": " (lower is better)"}
_NO_LABELS = (
    "no new compound has a label on a task of your models: the new measurements are of assays "
    "without a task (below), or of compounds identical to training compounds "
    "(--keep-training-overlap scores those)."
)
#: Metrics shown per task in the table (the JSON has every one of ``NEW_DATA_METRICS``).
_SHOWN = {"classification": ("roc_auc", "auc_pr"), "regression": ("r2", "rmse")}


def _num(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "—"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def _pair(values: dict[str, float | None], kind: str) -> str:
    return " / ".join(_num(values.get(m)) for m in _SHOWN[kind])


def _counts(t: TaskScores) -> str:
    if t.kind == "classification":
        return f"{t.n_actives}/{t.n_inactives}"
    return f"{t.n_values}({t.n_uncensored})"


def _task_lines(tasks: list[TaskScores], models: Sequence[str], kind: str, width: int) -> list[str]:
    base, other = (models[0], models[1]) if len(models) > 1 else (None, None)
    lines = []
    for t in tasks:
        head = f"  {t.task:<{width}} {_counts(t):>9}  "
        if t.status == "too_few_labels":
            lines.append(head + (t.note or "not scored"))
            continue
        cells = [f"{_pair(t.scores.get(m, {}), kind):>15}" for m in models]
        delta = ""
        if base and other and t.scores.get(base) and t.scores.get(other):
            a, b = t.scores[base].get(_SHOWN[kind][0]), t.scores[other].get(_SHOWN[kind][0])
            delta = _num(None if a is None or b is None else b - a, signed=True)
        note = f"  ({t.note})" if t.note else ""
        lines.append(head + " ".join(cells) + f" {delta:>8}" + note)
    return lines


def _mean_line(aggs: dict[str, AggregateScores | None], models: Sequence[str], kind: str) -> str:
    parts = []
    for m in models:
        a = aggs.get(m)
        if a is None:
            continue
        parts.append(f"{m} {_pair(a.means, kind)}" if a.n_tasks else f"{m}: {a.note}")
    n = next((a.n_tasks for a in aggs.values() if a is not None), 0)
    return f"  mean over {n} scored tasks: " + "; ".join(parts)


def _comparison_lines(c: ModelComparison) -> list[str]:
    lines = [
        f"  {c.compared} − {c.baseline} ({c.task_type}, {c.over_tasks.n_tasks} tasks, "
        f"{c.over_compounds[0].n_compounds if c.over_compounds else 0} compounds):"
    ]
    for mb, mc in zip(c.over_tasks.metrics, c.over_compounds, strict=True):
        tasks_ci = mb.mean_delta_ci95
        comp_ci = mc.ci95
        lines.append(
            f"    {_SHORT.get(mb.metric, mb.metric):<8} {_num(mb.mean_delta, True):>7}  95 % CI "
            f"over tasks {_interval(tasks_ci)}, over compounds {_interval(comp_ci)}"
            + _LOWER_BETTER.get(mb.metric, "")
        )
    s = c.over_tasks.significance
    if s is not None and s.n_tasks_tested:
        lines.append(
            f"    DeLong (BY-corrected): {round((s.share_improved or 0) * s.n_tasks_tested)} of "
            f"{s.n_tasks_tested} tasks better, "
            f"{round((s.share_worsened or 0) * s.n_tasks_tested)} worse"
        )
    if c.note:
        lines.append(f"    ({c.note})")
    return lines


def _interval(ci: tuple[float, float] | None) -> str:
    return "n/a" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def render_evaluation(doc: NewDataEvaluation) -> str:
    """``pharmafl evaluate``'s printed summary: per-task scores, means and comparisons."""
    s = doc.scores
    models = [m.name for m in s.models]
    c = doc.counts
    lines = [
        f"pharmafl evaluate — partner {doc.partner}: {len(models)} model(s) on "
        f"{s.n_rows} new compounds with labels ({c.get('measurements_read', 0)} measurements "
        f"read, {c.get('descriptor_vectors_in_training', 0)} compounds identical to training "
        f"rows {'left out' if doc.excluded_training_overlap else 'kept'})",
        *(f"  {m.name}: {m.path} (head {m.head})" for m in s.models),
    ]
    for kind in ("classification", "regression"):
        tasks = [t for t in s.tasks if t.kind == kind]
        if not tasks:
            continue
        width = max(len(t.task) for t in tasks)
        metrics = " / ".join(_SHORT[m] for m in _SHOWN[kind])
        counts = "act/inact" if kind == "classification" else "n(unc.)"
        lines += [
            "",
            f"{kind} tasks with new labels ({metrics} per model"
            + (
                f"; Δ {_SHORT[_SHOWN[kind][0]]} = {models[1]} − {models[0]}"
                if len(models) > 1
                else ""
            )
            + ")",
            f"  {'task':<{width}} {counts:>9}  "
            + " ".join(f"{m:>15}" for m in models)
            + (f" {'Δ':>8}" if len(models) > 1 else ""),
            *_task_lines(tasks, models, kind, width),
            _mean_line({m.name: getattr(m, kind) for m in s.models}, models, kind),
        ]
    if not s.tasks:
        lines += ["", _NO_LABELS]
    comparisons = [
        line for cmp in s.comparisons if cmp.over_tasks.n_tasks for line in _comparison_lines(cmp)
    ]
    if comparisons:
        lines += ["", "differences (bootstrap, 95 %):", *comparisons]
    if doc.assays_without_task:
        shown = ", ".join(f"{a} ({n})" for a, n in list(doc.assays_without_task.items())[:10])
        more = len(doc.assays_without_task) - 10
        lines += ["", "assays measured anew without a task (records): " + shown
                  + (f" and {more} more" if more > 0 else "")]  # fmt: skip
    if doc.rejections:
        lines += ["", f"{len(doc.rejections)} rows left out (reasons in the JSON's rejections)"]
    return "\n".join(lines) + "\n"


__all__ = ["render_evaluation"]
