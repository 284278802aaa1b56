"""The consortium's security policy: signed with the roster and pinned by every partner.

What partners agree before any round: how many partners may collude with the operator (c),
and so the fewest participants and the lowest threshold a round may have. A partner refuses
any round spec that breaks it (:class:`~pharmafl.common.errors.PolicyViolationError`, whose
name reaches the ledger as the dropout reason); the operator refuses to start such a run.

Why these bounds (n invited, t the threshold, c colluding partners, all of whom may sign
anything):

- **Survivor-set split.** The operator shows two disjoint groups of honest partners
  different survivor sets; colluders confirm both. Each group needs t confirmations, so the
  split needs (t − c) + (t − c) + c ≤ n honest-or-colluding partners: it is impossible when
  2t > n + c, i.e. **t ≥ ⌊(n + c)/2⌋ + 1**.
- **Shamir threshold.** c colluders' shares must not rebuild a secret: **t ≥ c + 1**.
- **Isolating a partner.** The operator learns the sum of a round's inputs; c colluders know
  their own. One honest partner hides only among others: **n ≥ c + 2** (and at least
  ``min_participants``).
- **Differencing two aggregates.** Two released sums over sets that differ by one partner i
  give i's update (the contribution study's coalitions S and S ∖ {i}, or a dropout in one of
  two runs from the same trunk). Optional **valuation groups** fix who is aggregated
  together: when the policy declares them, every round a partner joins invites, and every
  aggregate it reveals for sums, whole groups only, so any difference of released sums is a
  sum over whole groups. Each group has at least **max(3, c + 2)** partners: a member who
  knows its own update (and its c − 1 colluders') still faces at least two honest others.
  Without groups, a partner still never reveals for two different contributor sets from one
  starting trunk, in any run (:mod:`pharmafl.partner.reveals`), and the operator offers no
  contribution study.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pharmafl.secure.dp import DPConfig

#: Allowed party ids (as in :mod:`pharmafl.secure.identity`, which imports this module).
_PARTY_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Group = tuple[str, ...]


class SecurityPolicy(BaseModel):
    """Signed with the roster: the collusion bound and the participation floor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    collusion_bound: int = Field(
        0,
        ge=0,
        le=1000,
        description="c: partners that may collude with the operator. 0 = an honest-but-"
        "curious operator with no colluding partner.",
    )
    min_participants: int = Field(
        2,
        ge=2,
        le=10_000,
        description="Fewest partners invited to, and contributing to, any round (at least "
        "c + 2 apply).",
    )

    min_noise_multiplier: float = Field(
        0.0,
        ge=0,
        le=1e4,
        description="Differential privacy every round must use: its noise multiplier z at "
        "least this (0: DP not required).",
    )

    min_ring_bits: Literal[8, 16, 32, 64] | None = Field(
        None,
        description="Narrowest ring a round may encode updates in (32: no compressed rings, "
        "so exact FedAvg weights; None: any). Partners refuse a round spec below it.",
    )

    valuation_groups: tuple[tuple[Annotated[str, Field(pattern=_PARTY_ID)], ...], ...] | None = (
        Field(
            None,
            description="Partners that are always aggregated together (each group sorted, at "
            "least max(3, c + 2) partners, together every roster partner once). They are the "
            "contribution study's players; with them every round invites, and every aggregate "
            "sums, whole groups only. None: no groups (and no contribution study).",
        )
    )

    @field_validator("valuation_groups")
    @classmethod
    def _groups_sorted(cls, v: tuple[Group, ...] | None) -> tuple[Group, ...] | None:
        if v is None:
            return None
        groups = tuple(tuple(sorted(g)) for g in v)
        names = [p for g in groups for p in g]
        if len(set(names)) != len(names):
            raise ValueError("a partner is in more than one valuation group")
        return tuple(sorted(groups))

    @model_validator(mode="after")
    def _groups_large_enough(self) -> SecurityPolicy:
        for g in self.valuation_groups or ():
            if len(g) < self.min_group_size():
                raise ValueError(
                    f"valuation group {list(g)} has {len(g)} partners; with collusion bound "
                    f"{self.collusion_bound} each needs at least {self.min_group_size()} (a "
                    "member would learn the others' updates from the group's sum)"
                )
        return self

    def min_group_size(self) -> int:
        """The fewest partners a valuation group may have: max(3, c + 2)."""
        return max(3, self.collusion_bound + 2)

    def group_of(self, partner: str) -> Group | None:
        """The valuation group of ``partner`` (None without groups, or not in one)."""
        return next((g for g in self.valuation_groups or () if partner in g), None)

    def groups_violation(self, partners: Iterable[str], what: str) -> str | None:
        """Why ``partners`` (a round's invited set or its contributors) is not a union of
        whole valuation groups, or None (also None when the policy declares no groups)."""
        if self.valuation_groups is None:
            return None
        chosen = set(partners)
        split = [
            g for g in self.valuation_groups if chosen.intersection(g) and not chosen >= set(g)
        ]
        if not split:
            return None
        g = split[0]
        missing = sorted(set(g).difference(chosen))
        return (
            f"the {what} split valuation group {list(g)} (missing {missing}): the consortium's "
            "policy aggregates whole groups only, so no difference of two sums isolates a partner"
        )

    def check_roster(self, partners: Collection[str]) -> str | None:
        """Why this policy does not fit a roster's ``partners``, or None."""
        if self.valuation_groups is None:
            return None
        grouped = {p for g in self.valuation_groups for p in g}
        if grouped != set(partners):
            extra, missing = sorted(grouped - set(partners)), sorted(set(partners) - grouped)
            return (
                "the valuation groups must hold every roster partner exactly once "
                f"(not partners: {extra}; in no group: {missing})"
            )
        return None

    def ring_violation(self, ring_bits: int) -> str | None:
        """Why a round's ring breaks the policy (narrower than ``min_ring_bits``), or None."""
        if self.min_ring_bits is None or ring_bits >= self.min_ring_bits:
            return None
        return (
            f"a {ring_bits}-bit ring, the consortium's policy requires at least "
            f"{self.min_ring_bits} bits"
        )

    def dp_violation(self, dp: DPConfig | None, n_partners: int | None = None) -> str | None:
        """Why a round's DP settings break the policy, or None.

        With ``n_partners`` (invited, or contributing): the noise is split over m honest
        partners, so at least m + c of them must take part, or the sum carries less noise
        than z·C while ε is accounted at z.
        """
        if dp is not None and n_partners is not None:
            honest = n_partners - self.collusion_bound
            if dp.min_contributors > honest:
                return (
                    f"DP noise split over {dp.min_contributors} partners, but only {honest} "
                    f"of {n_partners} can be counted on (collusion bound "
                    f"{self.collusion_bound}): the sum would carry less noise than promised"
                )
        need = self.min_noise_multiplier
        if need <= 0:
            return None
        if dp is None:
            return f"no differential privacy, the consortium's policy requires z >= {need}"
        if dp.noise_multiplier < need:
            return (
                f"noise multiplier {dp.noise_multiplier}, the consortium's policy requires "
                f"z >= {need}"
            )
        return None

    def fewest_participants(self) -> int:
        """The fewest partners a round may invite."""
        return max(self.min_participants, self.collusion_bound + 2)

    def min_threshold(self, n_participants: int) -> int:
        """The lowest threshold a round of ``n_participants`` may use."""
        c = self.collusion_bound
        return max((n_participants + c) // 2 + 1, c + 1)

    def violation(self, n_participants: int, threshold: int) -> str | None:
        """Why a round of ``n_participants`` with ``threshold`` breaks the policy, or None."""
        c = self.collusion_bound
        if n_participants < self.fewest_participants():
            return (
                f"{n_participants} participants, the consortium's policy (collusion bound "
                f"{c}) needs at least {self.fewest_participants()}"
            )
        if threshold < self.min_threshold(n_participants):
            return (
                f"threshold {threshold} for {n_participants} participants, the consortium's "
                f"policy (collusion bound {c}) needs at least "
                f"{self.min_threshold(n_participants)}"
            )
        return None


def even_groups(partners: Iterable[str], size: int = 3) -> tuple[Group, ...] | None:
    """Sorted ``partners`` cut into consecutive valuation groups of ``size`` (the last one
    takes the remainder); None when that makes fewer than two groups."""
    names = sorted(partners)
    count = len(names) // size
    if count < 2:
        return None
    cuts = [i * size for i in range(count)] + [len(names)]
    return tuple(tuple(names[a:b]) for a, b in itertools.pairwise(cuts))


#: The policy of a roster that names none (rosters signed before policies existed).
DEFAULT_POLICY = SecurityPolicy()

__all__ = ["DEFAULT_POLICY", "SecurityPolicy", "even_groups"]
