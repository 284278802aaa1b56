"""What each partner gave: coalition utilities, leave-one-out and Shapley values.

Compatible with secure aggregation: the estimators see only scalar coalition utilities v(S)
and their standard errors from the operator's contribution study (each coalition trained
federatedly and securely aggregated, each member reporting its gain on its own tasks and
that gain's standard error); no method needs any partner's update in the clear. Nothing here
imports torch or RDKit.

- :class:`CachedUtility` — evaluates each coalition once, persists to JSON to resume;
- :func:`coalition_utility`, :func:`mean_gain_utility` — the default consortium utility
  (mean over partners of the AUC-PR gain over local-only);
- :func:`exact_shapley` (≤ 6 partners), :func:`permutation_shapley` (sampled, with a
  confidence interval), :func:`leave_one_out`, :func:`estimate_contributions` →
  :class:`ContributionResult`;
- :func:`contribution_study` with :class:`StudyConfig` — trains every coalition the estimator
  needs as its own securely aggregated run and collects the members' scalar gains.
"""

from pydantic import BaseModel

from pharmafl.accounting.coalitions import (
    CoalitionRun,
    StudyConfig,
    StudyMethod,
    coalition_plan,
    coalition_run_id,
    needed_coalitions,
    study_groups,
    study_id,
)
from pharmafl.accounting.privacy import PartnerPrivacy, partner_privacy
from pharmafl.accounting.shapley import (
    CONTRIBUTION_METHODS,
    EXACT_MAX_PLAYERS,
    ContributionResult,
    estimate_contributions,
    exact_shapley,
    exact_shapley_fractions,
    leave_one_out,
    permutation_shapley,
)
from pharmafl.accounting.study import CONTRIBUTION_DIR, CONTRIBUTION_FILE, contribution_study
from pharmafl.accounting.utility import (
    DEFAULT_UTILITY,
    CachedUtility,
    Coalition,
    CoalitionValue,
    UtilityCache,
    UtilityEstimate,
    UtilityFn,
    as_cached,
    coalition_utility,
    mean_gain_estimate,
    mean_gain_utility,
)
from pharmafl.common.errors import AccountingError

#: Schema file stem → model, for documents that cross a boundary (results, resume files).
SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "contribution_result": ContributionResult,
    "contribution_study_config": StudyConfig,
    "utility_cache": UtilityCache,
}

__all__ = [
    "AccountingError",
    "CONTRIBUTION_DIR",
    "CONTRIBUTION_FILE",
    "CONTRIBUTION_METHODS",
    "CachedUtility",
    "Coalition",
    "CoalitionRun",
    "CoalitionValue",
    "ContributionResult",
    "DEFAULT_UTILITY",
    "EXACT_MAX_PLAYERS",
    "PartnerPrivacy",
    "SCHEMA_MODELS",
    "StudyConfig",
    "StudyMethod",
    "UtilityCache",
    "UtilityEstimate",
    "UtilityFn",
    "as_cached",
    "coalition_plan",
    "coalition_run_id",
    "coalition_utility",
    "contribution_study",
    "estimate_contributions",
    "exact_shapley",
    "exact_shapley_fractions",
    "leave_one_out",
    "mean_gain_estimate",
    "mean_gain_utility",
    "needed_coalitions",
    "partner_privacy",
    "permutation_shapley",
    "study_groups",
    "study_id",
]
