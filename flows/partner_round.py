"""A partner's federated round and final evaluation, as a Prefect flow and as a task.

The flow is deployed once per partner (``pharmafl partner serve``) on the partner's own work
pool; the operator's flow starts it with ``run_deployment`` (distributed). Embedded, the
operator's flow runs the same body as a *task* in a thread per partner: a subflow run costs
about a second of API round trips per partner and round on a local server (four at once:
4.6 s against 0.07 s for four tasks, measured), which was most of a small round's time. The
partner folder is a deployment default that never comes from the operator. Only counts and
timings reach Prefect's logs; result persistence is off.
"""

# No `from __future__ import annotations`: Prefect builds each flow's parameter model from
# its annotations, which must be objects (the flow body is wrapped by fails_cleanly).
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows._states import fails_cleanly
from pharmafl.contract import PARTNER_ROUND_FLOW
from pharmafl.partner.federated import partner_finish, partner_round


def _round(
    partner_dir: str,
    exchange_url: str,
    round_id: str,
    final: bool = False,
    timeout_s: float = 600.0,
    poll_s: float = 0.2,
) -> dict[str, Any]:
    """Run one round (or, with ``final``, the head fine-tuning and evaluation)."""
    logger = get_run_logger()
    if final:
        report = partner_finish(partner_dir, exchange_url, round_id, timeout_s=timeout_s)
        logger.info("final evaluation done (%d epochs)", report.epochs_trained)
        return {"round_id": round_id, "final": True}
    rep = partner_round(partner_dir, exchange_url, round_id, timeout_s=timeout_s, poll_s=poll_s)
    logger.info("round %d submitted in %.1f s", rep.round_index, rep.compute_seconds)
    return {"round_id": round_id, "final": False, "compute_seconds": rep.compute_seconds}


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
    return _round(partner_dir, exchange_url, round_id, final, timeout_s)


@task(name=PARTNER_ROUND_FLOW, persist_result=False, log_prints=False, cache_policy=NO_CACHE)
@fails_cleanly("partner round")
def partner_round_task(
    partner_dir: str,
    exchange_url: str,
    round_id: str,
    final: bool = False,
    timeout_s: float = 600.0,
    poll_s: float = 0.2,
) -> dict[str, Any]:
    """The embedded form of :func:`partner_round_flow` (a task run of the operator's flow;
    ``poll_s``: how often it looks for the operator's next message in the store)."""
    return _round(partner_dir, exchange_url, round_id, final, timeout_s, poll_s)


__all__ = ["partner_round_flow", "partner_round_task"]
