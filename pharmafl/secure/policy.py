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
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pharmafl.secure.dp import DPConfig


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


#: The policy of a roster that names none (rosters signed before policies existed).
DEFAULT_POLICY = SecurityPolicy()

__all__ = ["DEFAULT_POLICY", "SecurityPolicy"]
