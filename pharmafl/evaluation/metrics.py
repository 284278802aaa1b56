"""Per-task metrics, following SparseChem's ``all_metrics`` / ``all_metrics_regr``.

Classification metrics are computed from probabilities of the positive class; regression
metrics are censor-aware the way SparseChem's censored MSE is (Arany et al. 2022, MELLODDY /
SparseChem; ``../shared/reference/melloddy-stack.md`` §2.2 and §2.5).

Both functions are pure and cheap: one sort per task gives the ROC and precision-recall curves
(scikit-learn's ``_binary_clf_curve`` construction, in NumPy: scikit-learn's per-call input
validation cost more than the metrics themselves when a federated round scores hundreds of tasks
at every epoch); every metric scikit-learn also has (ROC-AUC, AUC-PR, average precision,
Cohen's kappa, log-loss, Brier) is computed by the *same* formula, and the unit tests check them
against ``roc_auc_score``, ``precision_recall_curve`` + ``auc``, ``average_precision_score``,
``cohen_kappa_score``, ``log_loss`` and ``brier_score_loss``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from pharmafl.common.errors import EvaluationError

#: Metric keys of :func:`classification_task_metrics`, in output order (counts excluded).
CLASSIFICATION_METRICS: tuple[str, ...] = (
    "roc_auc",
    "auc_pr",
    "auc_pr_cal",
    "avg_prec",
    "f1_max",
    "kappa",
    "logloss",
    "brier",
    "ece",
)
#: Count keys of :func:`classification_task_metrics`.
CLASSIFICATION_COUNTS: tuple[str, ...] = ("n_pos", "n_neg")
#: Metric keys of :func:`regression_task_metrics`, in output order (counts excluded).
REGRESSION_METRICS: tuple[str, ...] = ("rmse", "rmse_uncensored", "r2", "pearson_r")
#: Count keys of :func:`regression_task_metrics`.
REGRESSION_COUNTS: tuple[str, ...] = ("n", "n_uncensored")

#: Reference positive rate of the calibrated AUC-PR (SparseChem ``--pi_zero``).
DEFAULT_PI_ZERO = 0.1
#: Number of equal-width probability bins of the expected calibration error.
DEFAULT_ECE_BINS = 10
#: Classification threshold on the probability for Cohen's kappa (logit 0 in SparseChem).
KAPPA_THRESHOLD = 0.5


def _as_1d(values: npt.ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise EvaluationError(
            f"{name} must be one-dimensional, got shape {arr.shape}.",
            fix="pass one task's values as a flat array.",
        )
    return arr


def _finite_float(values: npt.ArrayLike, name: str) -> np.ndarray:
    arr = _as_1d(values, name).astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise EvaluationError(
            f"{name} holds {bad} NaN or infinite value(s) at measured positions.",
            fix="check the model output; every measured entry needs a finite prediction.",
        )
    return arr


def _same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise EvaluationError(
            f"{name_a} has {a.shape[0]} values but {name_b} has {b.shape[0]}.",
            fix="pass labels and predictions of the same measurements.",
        )


def _nan_classification(n_pos: int, n_neg: int) -> dict[str, float]:
    out = dict.fromkeys(CLASSIFICATION_METRICS, math.nan)
    out["n_pos"] = float(n_pos)
    out["n_neg"] = float(n_neg)
    return out


def _binary_curves(
    y: np.ndarray, p: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ROC (fpr, tpr) and precision-recall (precision, recall) curves of one task.

    The points of ``sklearn.metrics.roc_curve(drop_intermediate=False)`` and
    ``precision_recall_curve``: cumulative true/false positives at each distinct score,
    highest first (ties form one point).
    """
    order = np.argsort(p, kind="mergesort")[::-1]
    score = p[order]
    distinct = np.flatnonzero(np.diff(score))
    idx = np.r_[distinct, score.size - 1]
    tps = np.cumsum(y[order], dtype=np.float64)[idx]
    fps = 1.0 + idx - tps
    fpr = np.r_[0.0, fps] / fps[-1]
    tpr = np.r_[0.0, tps] / tps[-1]
    precision = np.r_[(tps / (tps + fps))[::-1], 1.0]
    recall = np.r_[(tps / tps[-1])[::-1], 0.0]
    return fpr, tpr, precision, recall


def _area(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal area under a curve whose x is monotonic (``sklearn.metrics.auc``)."""
    area = float(np.trapezoid(y, x))
    return -area if x[-1] < x[0] else area


def calibrated_precision(precision: np.ndarray, pos_rate: float, pi_zero: float) -> np.ndarray:
    """Rescale precision to what it would be at the reference positive rate ``pi_zero``.

    Siblini et al. 2020, "Master your metrics with calibration" (IDA 2020), as implemented in
    SparseChem: ``prec_cal = 1 / ((1/prec - 1) * f + 1)`` with
    ``f = r (1 - pi0) / (pi0 (1 - r))``, where ``r`` is the task's positive rate (clipped to
    0.99 so that ``f`` stays finite).

    Parameters
    ----------
    precision : ndarray
        Precision values (0 maps to 0).
    pos_rate : float
        Positive rate of the evaluated labels.
    pi_zero : float
        Reference positive rate, in (0, 1).
    """
    r = min(max(pos_rate, 0.0), 0.99)
    factor = r * (1.0 - pi_zero) / (pi_zero * (1.0 - r))
    with np.errstate(divide="ignore"):
        return np.asarray(1.0 / ((1.0 / precision - 1.0) * factor + 1.0), dtype=np.float64)


def expected_calibration_error(
    y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = DEFAULT_ECE_BINS
) -> float:
    """Expected calibration error over ``n_bins`` equal-width probability bins.

    ECE = Σ_b (n_b / N) · |mean(y in b) − mean(p in b)| (Naeini et al. 2015; Nixon et al. 2019),
    with right-closed bins (lo, hi] and 0 in the first bin, as SparseChem's
    ``calcCalibrationErrors``. Empty bins contribute nothing.

    Parameters
    ----------
    y_true : ndarray of {0, 1}, shape (n,)
    y_prob : ndarray of float in [0, 1], shape (n,)
    n_bins : int
        Number of bins (≥ 1).
    """
    n = y_true.shape[0]
    if n == 0:
        return math.nan
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, y_prob, side="left") - 1, 0, n_bins - 1)
    sum_y = np.bincount(idx, weights=y_true.astype(np.float64), minlength=n_bins)
    sum_p = np.bincount(idx, weights=y_prob, minlength=n_bins)
    # |mean_y - mean_p| * n_b == |sum_y - sum_p|, so empty bins need no special case.
    return float(np.abs(sum_y - sum_p).sum() / n)


def classification_task_metrics(
    y_true: npt.ArrayLike,
    y_prob: npt.ArrayLike,
    *,
    pi_zero: float = DEFAULT_PI_ZERO,
    n_bins: int = DEFAULT_ECE_BINS,
) -> dict[str, float]:
    """Metrics of one binary classification task.

    Parameters
    ----------
    y_true : array of {0, 1}, shape (n,)
        Measured labels (1 = active).
    y_prob : array of float in [0, 1], shape (n,)
        Predicted probability of the positive class.
    pi_zero : float
        Reference positive rate of ``auc_pr_cal`` (default 0.1, SparseChem/MELLODDY).
    n_bins : int
        Number of equal-width bins of ``ece``.

    Returns
    -------
    dict
        ``roc_auc``, ``auc_pr`` (trapezoidal area under the precision-recall curve),
        ``auc_pr_cal`` (same with calibrated precision, Siblini et al. 2020), ``avg_prec``
        (average precision, scikit-learn's step-wise definition), ``f1_max`` (best F1 over
        thresholds), ``kappa`` (Cohen's kappa of ``y_prob >= 0.5``), ``logloss`` (mean binary
        cross-entropy), ``brier``, ``ece`` and the counts ``n_pos``, ``n_neg`` (as floats).
        Every metric is NaN, never an exception, when the task has fewer than two classes.

    Raises
    ------
    EvaluationError
        Labels other than 0/1, probabilities outside [0, 1] or non-finite, lengths differ.
    """
    y = _as_1d(y_true, "y_true")
    p = _finite_float(y_prob, "y_prob")
    _same_length(y, p, "y_true", "y_prob")
    if y.size and not np.isin(y, (0, 1)).all():
        raise EvaluationError(
            "y_true of a classification task must hold only 0 and 1.",
            fix="map labels to 0/1 (pharmafl's +1/-1 matrices are mapped by evaluate_tasks).",
        )
    if p.size and (p.min() < 0.0 or p.max() > 1.0):
        raise EvaluationError(
            f"y_prob must be probabilities in [0, 1]; got range [{p.min():.4g}, {p.max():.4g}].",
            fix="apply a sigmoid to logits before evaluating.",
        )
    if not 0.0 < pi_zero < 1.0:
        raise EvaluationError(f"pi_zero must lie in (0, 1), got {pi_zero}.")
    if n_bins < 1:
        raise EvaluationError(f"n_bins must be at least 1, got {n_bins}.")
    y = y.astype(np.int8, copy=False)
    n = y.shape[0]
    n_pos = int(y.sum())
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return _nan_classification(n_pos, n_neg)

    fpr, tpr, precision, recall = _binary_curves(y, p)
    pos_rate = n_pos / n
    precision_cal = calibrated_precision(precision, pos_rate, pi_zero)

    # Same formula as sklearn.metrics.average_precision_score (step-wise, no interpolation).
    avg_prec = float(-np.sum(np.diff(recall) * precision[:-1]))
    denom = precision + recall
    f1 = np.divide(2.0 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)

    # Cohen's kappa at the 0.5 threshold from the 2x2 confusion counts (sklearn's formula).
    pred_pos = p >= KAPPA_THRESHOLD
    tp = int(np.count_nonzero(pred_pos & (y == 1)))
    fp = int(np.count_nonzero(pred_pos & (y == 0)))
    fn = n_pos - tp
    tn = n_neg - fp
    observed = (tp + tn) / n
    expected = ((tp + fp) * n_pos + (tn + fn) * n_neg) / (n * n)
    # With both classes present ``expected`` < 1, so the ratio is always defined.
    kappa = (observed - expected) / (1.0 - expected)

    # Same clipping as sklearn.metrics.log_loss (machine epsilon of float64).
    eps = np.finfo(np.float64).eps
    pc = np.clip(p, eps, 1.0 - eps)
    logloss = float(-np.mean(y * np.log(pc) + (1 - y) * np.log1p(-pc)))

    out = {
        "roc_auc": _area(fpr, tpr),
        "auc_pr": _area(recall, precision),
        "auc_pr_cal": _area(recall, precision_cal),
        "avg_prec": avg_prec,
        "f1_max": float(f1.max()),
        "kappa": float(kappa),
        "logloss": logloss,
        "brier": float(np.mean((p - y) ** 2)),
        "ece": expected_calibration_error(y, p, n_bins),
        "n_pos": float(n_pos),
        "n_neg": float(n_neg),
    }
    return out


def censored_squared_error(
    y_true: np.ndarray, y_pred: np.ndarray, censor: np.ndarray | None
) -> np.ndarray:
    """Per-value squared error of SparseChem's censored MSE.

    ``censor`` −1 (``<``: the true value is at most the label) and +1 (``>``: at least the
    label) count as zero error when the prediction lies on the allowed side; otherwise the
    error is the distance to the label: ``relu(censor · (y_true − y_pred))²`` (Arany et al.
    2022, SparseChem ``censored_mse_loss_numpy``). ``censor`` 0 or ``None``: plain squared
    error.
    """
    diff = y_true - y_pred
    if censor is not None:
        diff = np.where(censor == 0, diff, np.maximum(censor * diff, 0.0))
    return np.asarray(diff * diff, dtype=np.float64)


def regression_task_metrics(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    censor: npt.ArrayLike | None = None,
) -> dict[str, float]:
    """Metrics of one regression task, censor-aware as SparseChem's ``all_metrics_regr``.

    Parameters
    ----------
    y_true : array of float, shape (n,)
        Measured values (e.g. pXC50).
    y_pred : array of float, shape (n,)
        Predicted values, on the same scale.
    censor : array of {-1, 0, +1}, shape (n,), optional
        −1 for ``<``, 0 for ``=``, +1 for ``>`` qualified measurements; ``None`` = all exact.

    Returns
    -------
    dict
        ``rmse`` (over all values, censored ones counting zero error on the allowed side),
        ``rmse_uncensored``, ``r2`` and ``pearson_r`` (both on uncensored values; NaN with fewer
        than two of them or when their variance is zero), and the counts ``n``,
        ``n_uncensored`` (as floats).

    Raises
    ------
    EvaluationError
        Non-finite values, censor values other than −1/0/+1, lengths differ.
    """
    y = _finite_float(y_true, "y_true")
    p = _finite_float(y_pred, "y_pred")
    _same_length(y, p, "y_true", "y_pred")
    c: np.ndarray | None = None
    if censor is not None:
        c = _as_1d(censor, "censor")
        _same_length(y, c, "y_true", "censor")
        if c.size and not np.isin(c, (-1, 0, 1)).all():
            raise EvaluationError(
                "censor must hold only -1 ('<'), 0 ('=') and +1 ('>').",
                fix="use the reg_T10_censor_y.npz convention of docs/prepared-format.md.",
            )
        c = c.astype(np.float64, copy=False)
    n = y.shape[0]
    uncensored = np.ones(n, dtype=bool) if c is None else c == 0
    n_unc = int(np.count_nonzero(uncensored))
    out = {
        "rmse": math.nan,
        "rmse_uncensored": math.nan,
        "r2": math.nan,
        "pearson_r": math.nan,
        "n": float(n),
        "n_uncensored": float(n_unc),
    }
    if n == 0:
        return out
    out["rmse"] = float(np.sqrt(censored_squared_error(y, p, c).mean()))
    if n_unc == 0:
        return out
    yu, pu = y[uncensored], p[uncensored]
    out["rmse_uncensored"] = float(np.sqrt(np.mean((yu - pu) ** 2)))
    if n_unc >= 2 and np.var(yu) > 0.0:
        # scikit-learn's r2_score (variance > 0, so its force_finite is moot), written out:
        # importing sklearn.metrics costs a flow run 2 s.
        out["r2"] = float(1.0 - np.sum((yu - pu) ** 2) / np.sum((yu - yu.mean()) ** 2))
        if np.var(pu) > 0.0:
            out["pearson_r"] = float(np.corrcoef(yu, pu)[0, 1])
    return out


__all__ = [
    "CLASSIFICATION_COUNTS",
    "CLASSIFICATION_METRICS",
    "DEFAULT_ECE_BINS",
    "DEFAULT_PI_ZERO",
    "KAPPA_THRESHOLD",
    "REGRESSION_COUNTS",
    "REGRESSION_METRICS",
    "calibrated_precision",
    "censored_squared_error",
    "classification_task_metrics",
    "expected_calibration_error",
    "regression_task_metrics",
]
