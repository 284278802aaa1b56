"""A partner's federated round and final evaluation, as Prefect flows.

Deployed once per partner (``pharmafl partner serve``) on the partner's own work pool; the
operator's flow starts them with ``run_deployment`` (distributed) or calls them in threads
(embedded). The partner folder is a deployment default that never comes from the operator.
Only counts and timings reach Prefect's logs; result persistence is off.
"""

# No `from __future__ import annotations`: Prefect builds each flow's parameter model from
# its annotations, which must be objects (the flow body is wrapped by fails_cleanly).
from typing import Any

from prefect import flow, get_run_logger

from flows._states import fails_cleanly
from pharmafl.contract import PARTNER_ROUND_FLOW
from pharmafl.partner.federated import partner_finish, partner_round


@flow(name=PARTNER_ROUND_FLOW, persist_result=False, log_prints=False)
@fails_cleanly("partner round")
def partner_round_flow(
    partner_dir: str,
    exchange_url: str,
    round_id: str,
    final: bool = False,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Run one round (or, with ``final``, the head fine-tuning and evaluation)."""
    logger = get_run_logger()
    if final:
        report = partner_finish(partner_dir, exchange_url, round_id, timeout_s=timeout_s)
        logger.info("final evaluation done (%d epochs)", report.epochs_trained)
        return {"round_id": round_id, "final": True}
    rep = partner_round(partner_dir, exchange_url, round_id, timeout_s=timeout_s)
    logger.info("round %d submitted in %.1f s", rep.round_index, rep.compute_seconds)
    return {"round_id": round_id, "final": False, "compute_seconds": rep.compute_seconds}


__all__ = ["partner_round_flow"]
