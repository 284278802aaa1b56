"""``DIR/report/report.html``: one self-contained page (inline CSS, PNGs as data URIs, no JS).

A Content-Security-Policy forbids every external load, so the page opens offline, in a
locked-down browser, or as an e-mail attachment exactly as it was written.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Sequence
from pathlib import Path

from pharmafl.common.io import atomic_write_text
from pharmafl.layout import REPORT_FILE
from pharmafl.report import plots
from pharmafl.report.models import (
    REGRESSION_BENEFIT_METRICS,
    REGRESSION_BENEFIT_NAMES,
    ConsortiumSummary,
    ModelMetrics,
    Participation,
    PartnerSummary,
)

logger = logging.getLogger(__name__)

#: File name of the report inside the report folder.
REPORT_FILENAME = REPORT_FILE

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:0;
color:#1d2330;background:#f6f7f9;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:1.7em;margin:0 0 4px}h2{font-size:1.25em;margin:34px 0 8px;
border-bottom:2px solid #d9dde3;padding-bottom:4px}
.meta{color:#5b6372;font-size:.92em}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:18px 0}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:10px 16px;min-width:150px}
.card b{display:block;font-size:1.35em}.card span{color:#5b6372;font-size:.85em}
table{border-collapse:collapse;background:#fff;margin:8px 0 4px;font-size:.9em}
th,td{border:1px solid #dde1e7;padding:5px 9px;text-align:right}
th{background:#eef1f5}td:first-child,th:first-child{text-align:left}
.pos{color:#0b6e3a}.neg{color:#b3261e}
figure{margin:12px 0;background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:8px}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{color:#5b6372;font-size:.85em;margin-top:4px}
.note{color:#5b6372;font-size:.88em}code{background:#eef1f5;padding:1px 4px;border-radius:3px}
.ok{color:#0b6e3a;font-weight:600}.bad{color:#b3261e;font-weight:600}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    cls = "pos" if value > 0 else "neg" if value < 0 else ""
    return f'<span class="{cls}">{value:+.{digits}f}</span>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table; cells are trusted HTML (escape before)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(png: bytes | None, alt: str, caption: str) -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _metric_cells(m: ModelMetrics | None) -> list[str]:
    return ["–", "–"] if m is None else [_num(m.roc_auc), _num(m.auc_pr)]


def _performance_rows(partners: Sequence[PartnerSummary]) -> list[list[str]]:
    rows = []
    for p in partners:
        rows.append(
            [
                _e(p.label),
                *_metric_cells(p.local),
                *_metric_cells(p.federated),
                *_metric_cells(p.pooled),
                _signed(p.gain("roc_auc")),
                _signed(p.gain("auc_pr")),
                "–" if p.federated.n_tasks is None else str(p.federated.n_tasks),
            ]
        )
    return rows


def _benefit_section(partners: Sequence[PartnerSummary]) -> str:
    rows = []
    for p in partners:
        if p.benefit is None:
            continue
        cells = [_e(p.name), str(p.benefit.n_tasks)]
        for key in ("roc_auc", "auc_pr", "auc_pr_cal"):
            mb = p.benefit.metric(key)
            cells.append(_signed(None if mb is None else mb.mean_delta))
        pr = p.benefit.metric("auc_pr")
        cells.append(_ci(None if pr is None else pr.mean_delta_ci95))
        cells.append(_signed(None if pr is None else pr.mean_improve_to_perfect))
        cells.append(_num(None if pr is None else pr.share_tasks_better, 2))
        sig = p.benefit.significance
        cells.append(_num(None if sig is None else sig.share_improved, 2))
        cells.append(_num(None if sig is None else sig.share_worsened, 2))
        rows.append(cells)
    if not rows:
        return ""
    headers = [
        "partner",
        "tasks",
        "Δ ROC-AUC",
        "Δ AUC-PR",
        "Δ cal. AUC-PR",
        "Δ AUC-PR 95 % CI (tasks)",
        "RIPtoP AUC-PR",
        "share tasks better (AUC-PR)",
        "share sig. improved",
        "share sig. worse",
    ]
    return (
        "<h3>Benefit details (shared by each partner)</h3>"
        + _table(headers, rows)
        + '<p class="note">Means over the partner\'s own tasks, federated minus local-only. '
        "RIPtoP: relative improvement proportional to perfection, (b − a)/(1 − a) "
        "(Heyndrickx et al., J. Chem. Inf. Model. 2024). Significance: paired DeLong ROC-AUC "
        "test per task, Benjamini–Yekutieli corrected.</p>"
    )


def _ci(ci: tuple[float, float] | None) -> str:
    return "–" if ci is None else f"{ci[0]:+.3f} … {ci[1]:+.3f}"


def _regression_section(partners: Sequence[PartnerSummary]) -> str:
    """Federated − local on each partner's regression tasks, with intervals over tasks."""
    rows = []
    for p in partners:
        b = p.regression_benefit
        if b is None:
            continue
        cells = [_e(p.name), str(b.n_tasks)]
        for key in REGRESSION_BENEFIT_METRICS:
            mb = b.metric(key)
            cells += [
                _signed(None if mb is None else mb.mean_delta),
                _ci(None if mb is None else mb.mean_delta_ci95),
            ]
        r2 = b.metric("r2")
        cells.append(_num(None if r2 is None else r2.share_tasks_better, 2))
        rows.append(cells)
    if not rows:
        return ""
    headers = ["partner", "regression tasks"]
    for name in REGRESSION_BENEFIT_NAMES.values():
        headers += [f"Δ {name}", f"Δ {name} 95 % CI (tasks)"]
    headers.append("share tasks better (R²)")
    return (
        "<h3>Regression benefit (shared by each partner)</h3>"
        + _table(headers, rows)
        + '<p class="note">Federated minus local-only on the partner\'s regression tasks '
        "(pIC50-type values): R² and the measured RMSE over the measured (=) values, the "
        "censor-aware RMSE over every value (a censored value, &lt; or &gt;, counts no error on "
        "its allowed side); a negative Δ RMSE is a gain. R² up and the censor-aware RMSE up "
        "too: the model predicts measured values better and censored ones worse.</p>"
    )


def _contribution_rows(summary: ConsortiumSummary) -> list[list[str]]:
    rows = []
    for p in summary.partners:
        c = p.contribution
        if c is None:
            rows.append([_e(p.name)] + ["–"] * 8)
            continue
        ci = "–" if c.shapley_ci is None else f"[{c.shapley_ci[0]:.4f}, {c.shapley_ci[1]:.4f}]"
        rows.append(
            [
                _e(p.name) + ("" if c.group is None else f"<br><small>group {_e(c.group)}</small>"),
                _num(c.shapley, 4),
                ci,
                _num(c.leave_one_out, 4),
                "–" if c.data is None else f"{c.data.compounds:,}",
                "–" if c.data is None else f"{c.data.tasks:,}",
                "–" if c.data is None else f"{c.data.measurements:,}",
                "–"
                if c.rounds is None
                else f"{c.rounds.submitted} / {_e(c.rounds.dropped_text())}",
                _num(c.compute_seconds, 1),
            ]
        )
    return rows


def _rounds_cell(rounds: Participation | None) -> str:
    """``submitted / dropped (causes)``."""
    return "–" if rounds is None else f"{rounds.submitted} / {_e(rounds.dropped_text())}"


def _contribution_text(summary: ConsortiumSummary) -> str:
    c = summary.contribution
    if c is None:
        return (
            '<p class="note">No contribution study was run: only data and participation are '
            "shown.</p>"
        )
    how = {
        "exact": f"exact Shapley values over all {c.n_coalitions} coalitions",
        "permutation": f"a permutation-sampling estimate ({c.n_permutations} orderings, "
        f"{c.n_coalitions} coalitions, {_num(c.confidence, 2)} intervals)",
        "leave_one_out": "leave-one-out only",
    }[c.method]
    adds_up = (
        ", and the Shapley values add up to v(N) − v(∅)" if c.method != "leave_one_out" else ""
    )
    secure = (
        "Each coalition was trained as its own securely aggregated federation and every member "
        "reported its gain on its own tasks and that gain's standard error; no partner's update "
        "was ever seen in the clear."
        if summary.secure_aggregation
        else "Each coalition was trained as its own federation and every member reported its "
        "gain on its own tasks and that gain's standard error (secure aggregation was off in "
        "this run)."
    )
    groups = (
        " The players are the consortium's valuation groups: partners that are always "
        "aggregated together, so that no two coalitions differ by one partner (whose update "
        "their difference would give); each partner shows its group's values."
        if c.groups is not None
        else ""
    )
    ci = "" if c.grand_coalition_ci is None else " [{:.4f}, {:.4f}]".format(*c.grand_coalition_ci)
    return (
        f"<p>Utility v(S): {_e(c.utility)}.{groups} Contributions are {how}; "
        f"v(N) = {c.grand_coalition_utility:.4f}{ci}, v(∅) = {c.empty_coalition_utility:.4f}"
        f"{adds_up}.{_main_run_gain(summary)} {secure}</p>"
    )


def _main_run_gain(summary: ConsortiumSummary) -> str:
    """The main run's gain as v(N) measures it (:meth:`ConsortiumSummary.main_run_utility`);
    the grand coalition should agree with it."""
    mean = summary.main_run_utility()
    return "" if mean is None else f" The main run, measured the same way: {mean:.4f}."


def _ledger_section(summary: ConsortiumSummary) -> str:
    led = summary.ledger
    if led is None:
        return '<p class="note">No ledger summary was recorded.</p>'
    status = (
        '<span class="ok">verified</span>'
        if led.verified
        else f'<span class="bad">NOT verified</span> — {_e(led.issue or "")}'
    )
    if led.verified and not led.signatures_checked:
        status += " (chain only; signatures not checked)"
    rows = [[_e(k), str(v)] for k, v in sorted(led.events.items())]
    head = "–" if led.head_hash is None else f"<code>{_e(led.head_hash)}</code>"
    return (
        f"<p>{led.entries} entries, {status}. Head hash: {head}.</p>"
        + (_table(["event", "entries"], rows) if rows else "")
        + '<p class="note">Re-check it at any time: <code>pharmafl ledger verify ledger.jsonl '
        "--roster roster.json --head HEAD_HASH</code>; it names the first modified, deleted, "
        "inserted or reordered entry.</p>"
    )


def _cards(summary: ConsortiumSummary) -> str:
    gains = [p.gain("auc_pr") for p in summary.partners]
    better = sum(1 for g in gains if g is not None and g >= 0)
    cards = [(str(len(summary.partners)), "partners"), (str(summary.rounds), "federated rounds")]
    if gains:
        mean_gain = sum(g for g in gains if g is not None) / len(gains)
        cards += [
            (f"{mean_gain:+.4f}", "mean AUC-PR gain (federated − local)"),
            (f"{better} / {len(gains)}", "partners at or above local-only"),
        ]
    if summary.gap_capture is not None:
        cards.append((f"{100 * summary.gap_capture:.0f} %", "of pooled − local gain captured"))
    if summary.ledger is not None:
        cards.append(("✓" if summary.ledger.verified else "✗", "ledger verified"))
    return (
        '<div class="cards">'
        + "".join(f"<div class='card'><b>{_e(v)}</b><span>{_e(k)}</span></div>" for v, k in cards)
        + "</div>"
    )


_PERFORMANCE_HEADERS = (
    "partner",
    "local ROC-AUC",
    "local AUC-PR",
    "federated ROC-AUC",
    "federated AUC-PR",
    "pooled ROC-AUC",
    "pooled AUC-PR",
    "Δ ROC-AUC",
    "Δ AUC-PR",
    "tasks",
)
_CONTRIBUTION_HEADERS = (
    "partner",
    "Shapley",
    "interval",
    "leave-one-out",
    "compounds",
    "tasks",
    "measurements",
    "rounds submitted / dropped",
    "compute (s)",
)


def _head(summary: ConsortiumSummary) -> list[str]:
    """Document head, title line and key-figure cards."""
    title = f"pharmafl consortium report — {summary.consortium or 'consortium'}"
    meta = (
        f"created {summary.created_at:%Y-%m-%d %H:%M} UTC · pharmafl {_e(summary.pharmafl_version)}"
        f" · secure aggregation {'on' if summary.secure_aggregation else 'OFF'}"
        f" · {summary.rounds} rounds · {summary.wall_seconds / 60:.1f} min wall time"
    )
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1><p class='meta'>{meta}</p>",
        _cards(summary),
    ]


def _got(summary: ConsortiumSummary) -> list[str]:
    """What each partner got: scores, benefit details, ECDF differences, learning curves."""
    parts = [
        "<h2>What each partner got</h2>",
        "<p>Test-fold scores of each partner's private heads, mean over its own tasks: local-only "
        "model, federated trunk, and (in simulations) a model trained on the pooled data.</p>",
        _table(_PERFORMANCE_HEADERS, _performance_rows(summary.partners)),
        ""
        if summary.partners
        else '<p class="note">No partner\'s metrics were found in this folder: the notes below '
        "name the file each partner lacks.</p>",
        _figure(
            plots.performance_png(summary),
            "local, federated and pooled scores per partner",
            "Left and middle: scores per model (y-axes cut to show differences). Right: AUC-PR "
            "gain over local-only.",
        ),
        _benefit_section(summary.partners),
        _regression_section(summary.partners),
    ]
    ecdf = plots.ecdf_png(summary)
    if ecdf is not None:
        parts += [
            "<h2>Distribution of per-task scores</h2>",
            _figure(
                ecdf,
                "ECDF differences per partner",
                "ECDF of the federated model's per-task metric minus the local-only model's. "
                "Below zero, fewer federated tasks score at most x: the distribution moved right.",
            ),
        ]
    curves = plots.learning_curves_png(summary)
    if curves is not None:
        parts += [
            "<h2>Learning curves</h2>",
            _figure(
                curves,
                "validation metrics per round",
                "Validation means each partner chose to share after every round.",
            ),
        ]
    return parts


def _gave(summary: ConsortiumSummary) -> list[str]:
    """What each partner gave: contribution values, data and participation."""
    return [
        "<h2>What each partner gave</h2>",
        _contribution_text(summary),
        _table(_CONTRIBUTION_HEADERS, _contribution_rows(summary)),
        _figure(
            plots.contribution_png(summary),
            "Shapley and leave-one-out values per partner",
            "Shapley value (with its interval when sampled) and leave-one-out value "
            "v(N) − v(N ∖ {i}) of each partner.",
        ),
    ]


def _privacy_section(summary: ConsortiumSummary) -> str:
    """ε per partner over every aggregate its updates went into (all runs)."""
    if not summary.privacy:
        return ""
    rows = [
        [
            _e(r.partner),
            str(r.aggregates),
            str(r.runs),
            "unbounded (no DP)" if r.epsilon is None else f"{r.epsilon:.3g}",
            "–" if r.delta is None else f"{r.delta:.0e}",
        ]
        for r in summary.privacy
    ]
    return (
        "<h2>Privacy loss</h2>"
        + _table(["partner", "aggregates", "runs", "ε", "δ"], rows)
        + '<p class="note">Every aggregate a partner\'s update went into (main run, '
        "contribution-study coalitions, retries), composed at replace-one sensitivity.</p>"
    )


def report_html(summary: ConsortiumSummary) -> str:
    """The report page as a string (see :func:`render_report`)."""
    parts = [*_head(summary), *_got(summary), *_gave(summary)]
    parts += [_privacy_section(summary), "<h2>Ledger</h2>", _ledger_section(summary)]
    if summary.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in summary.notes))
        parts.append("</ul>")
    parts.append("</main></body></html>")
    return "\n".join(p for p in parts if p)


def render_report(summary: ConsortiumSummary, out_dir: str | Path) -> Path:
    """Write ``out_dir/report.html`` atomically and return its path.

    The page is self-contained: figures are embedded PNGs, styles inline, no script, and a
    Content-Security-Policy that blocks any external load.
    """
    path = Path(out_dir) / REPORT_FILENAME
    atomic_write_text(path, report_html(summary))
    logger.info("wrote %s", path)
    return path


__all__ = ["REPORT_FILENAME", "render_report", "report_html"]
