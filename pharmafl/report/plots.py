"""The report's figures as PNG bytes (matplotlib's Agg canvas; no display, no global state).

Each function returns ``None`` when the summary holds nothing to plot.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from pharmafl.report.models import ConsortiumSummary

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Colours per model (colour-blind-safe Okabe–Ito palette).
MODEL_COLOURS: dict[str, str] = {"local": "#999999", "federated": "#0072B2", "pooled": "#E69F00"}
_SERIES = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#F0E442", "#000000")
_DPI = 110
_LABELS = {
    "roc_auc": "ROC-AUC",
    "auc_pr": "AUC-PR",
    "auc_pr_cal": "calibrated AUC-PR",
    "valid_auc_pr": "validation AUC-PR",
    "valid_roc_auc": "validation ROC-AUC",
}


def metric_label(metric: str) -> str:
    """Human name of a metric key."""
    return _LABELS.get(metric, metric.replace("_", " "))


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    return fig


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def _style(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def performance_png(summary: ConsortiumSummary) -> bytes | None:
    """Per-partner bars of local vs federated vs pooled ROC-AUC and AUC-PR, plus AUC-PR gains
    (None without any partner row)."""
    if not summary.partners:
        return None
    names = [p.name for p in summary.partners]
    models = ["local", "federated"] + (
        ["pooled"] if all(p.pooled is not None for p in summary.partners) else []
    )
    x = np.arange(len(names))
    width = 0.8 / len(models)
    fig = _figure(max(7.5, 1.6 * len(names) + 4.5), 3.4)
    axes = fig.subplots(1, 3, width_ratios=[1, 1, 1])
    for ax, metric in zip(axes[:2], ("roc_auc", "auc_pr"), strict=True):
        values_all = []
        for k, model in enumerate(models):
            vals = [getattr(getattr(p, model), metric) for p in summary.partners]
            values_all += vals
            ax.bar(
                x + (k - (len(models) - 1) / 2) * width,
                vals,
                width,
                label=model,
                color=MODEL_COLOURS[model],
            )
        lo, hi = min(values_all), max(values_all)
        pad = max(0.02, (hi - lo) * 0.25)
        ax.set_ylim(max(0.0, lo - pad), min(1.0, hi + pad))
        ax.set_title(f"test {metric_label(metric)} (axis cut)", fontsize=10)
        ax.set_xticks(x, names, rotation=20 if len(names) > 4 else 0)
        _style(ax)
    axes[0].legend(fontsize=8, frameon=False)
    ax = axes[2]
    gain_models = [m for m in models if m != "local"]
    gw = 0.8 / len(gain_models)
    for k, model in enumerate(gain_models):
        gains = [p.gain("auc_pr", model) or 0.0 for p in summary.partners]
        ax.bar(
            x + (k - (len(gain_models) - 1) / 2) * gw,
            gains,
            gw,
            label=f"{model} − local",
            color=MODEL_COLOURS[model],
        )
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_title("AUC-PR gain over local-only", fontsize=10)
    ax.set_xticks(x, names, rotation=20 if len(names) > 4 else 0)
    ax.legend(fontsize=8, frameon=False)
    _style(ax)
    return _png(fig)


def ecdf_png(summary: ConsortiumSummary) -> bytes | None:
    """ECDF(federated) − ECDF(local) curves each partner shared, one panel per metric."""
    metrics = sorted({c.metric for p in summary.partners for c in p.ecdf})
    if not metrics:
        return None
    fig = _figure(max(5.0, 4.2 * len(metrics)), 3.3)
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for ax, metric in zip(axes, metrics, strict=True):
        for k, p in enumerate(summary.partners):
            for curve in p.ecdf:
                if curve.metric == metric:
                    ax.plot(
                        curve.grid,
                        curve.difference,
                        label=p.name,
                        color=_SERIES[k % len(_SERIES)],
                        linewidth=1.6,
                        drawstyle="steps-post",  # ECDFs are step functions
                    )
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xlabel(f"per-task {metric_label(metric)}")
        ax.set_ylabel("ECDF federated − ECDF local")
        ax.set_title(f"{metric_label(metric)}: below 0 = federated shifts right", fontsize=10)
        ax.legend(fontsize=8, frameon=False)
        _style(ax)
    return _png(fig)


def learning_curves_png(summary: ConsortiumSummary) -> bytes | None:
    """Per-round validation scalars that partners shared, one panel per metric."""
    metrics = sorted({m for r in summary.learning_curves for m in r.metrics})
    if not metrics:
        return None
    fig = _figure(max(5.0, 4.2 * len(metrics)), 3.3)
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for ax, metric in zip(axes, metrics, strict=True):
        for k, p in enumerate(summary.partners):
            pts = [
                (r.round, r.metrics[metric][p.name])
                for r in summary.learning_curves
                if metric in r.metrics and p.name in r.metrics[metric]
            ]
            if pts:
                xs, ys = zip(*sorted(pts), strict=True)
                ax.plot(xs, ys, marker="o", markersize=3, label=p.name, color=_SERIES[k % 8])
        ax.set_xlabel("round")
        ax.set_ylabel(metric_label(metric))
        ax.set_title(f"{metric_label(metric)} per round", fontsize=10)
        ax.legend(fontsize=8, frameon=False)
        _style(ax)
    return _png(fig)


def contribution_png(summary: ConsortiumSummary) -> bytes | None:
    """Shapley (with interval, if sampled) and leave-one-out values per partner."""
    contribs = [p.contribution for p in summary.partners]
    if not any(
        c is not None and (c.shapley is not None or c.leave_one_out is not None) for c in contribs
    ):
        return None
    names = [p.name for p in summary.partners]
    y = np.arange(len(names))
    fig = _figure(7.0, max(2.4, 0.55 * len(names) + 1.3))
    ax = fig.subplots()
    h = 0.38
    shap = [c.shapley if c and c.shapley is not None else np.nan for c in contribs]
    loo = [c.leave_one_out if c and c.leave_one_out is not None else np.nan for c in contribs]
    err = None
    if all(c is not None and c.shapley_ci is not None for c in contribs):
        err = np.array(
            [
                [s - c.shapley_ci[0], c.shapley_ci[1] - s]  # type: ignore[union-attr,index]
                for s, c in zip(shap, contribs, strict=True)
            ]
        ).T
    ax.barh(y - h / 2, shap, h, xerr=err, label="Shapley", color="#0072B2", capsize=3)
    ax.barh(y + h / 2, loo, h, label="leave-one-out", color="#009E73")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    unit = summary.contribution.utility if summary.contribution else "consortium utility"
    ax.set_xlabel(f"contribution to: {unit}", fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="best")
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    return _png(fig)


__all__ = [
    "MODEL_COLOURS",
    "contribution_png",
    "ecdf_png",
    "learning_curves_png",
    "metric_label",
    "performance_png",
]
