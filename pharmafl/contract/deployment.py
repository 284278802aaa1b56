"""How the operator reaches a partner's worker on the consortium's Prefect server.

Each partner registers one deployment of the partner-round flow on its own work pool
(``pharmafl partner serve``); the operator starts rounds with ``run_deployment`` on
``<PARTNER_ROUND_FLOW>/<partner id>``. Both sides and the flow itself use these names.
"""

from __future__ import annotations

#: Flow name of a partner's round (and final evaluation).
PARTNER_ROUND_FLOW = "pharmafl-partner-round"


def partner_deployment(partner: str) -> str:
    """The full deployment name of ``partner``'s round flow."""
    return f"{PARTNER_ROUND_FLOW}/{partner}"


__all__ = ["PARTNER_ROUND_FLOW", "partner_deployment"]
