"""A partner's side of federated training: one round, and the final evaluation.

Per round (:func:`partner_round`) the partner fetches the operator's signed round spec
(checking and recording the operator's ledger head it carries, :mod:`pharmafl.partner.heads`)
and the global trunk (checking its hash), advertises and shares its secure-aggregation keys,
trains trunk + private head locally from the global trunk, and submits only its masked trunk
update — weighted by its training rows so the secure sum is FedAvg (McMahan et al. 2017).
Data, heads and per-task metrics never leave; the partner shares a few validation scalars.

Local state lives in one folder per run (:func:`federated_run_dir`): ``models/federated/``
for the consortium's main run (run id ``train``), ``models/runs/<run id>/`` for any other
(e.g. a coalition of a contribution study). It holds ``committed.pt`` (the private head after
the last aggregated round) and ``pending/<round id>.pt`` (after training in the current
round). A pending state is committed when the next spec says its round was aggregated, and
discarded when the round aborted, so a retried round retrains from the same state (same
seeds, same result) and a restarted partner never redoes a completed round: a partner
refuses any round it already advertised keys in. A round-0 spec starts from scratch (the
state an earlier run left in the folder is dropped).

A contribution-study run's final spec asks for one scalar (``report_test_gain``): the partner
compares the run's model with its own local-only model (``models/local/metrics.json``) on its
test fold and signs the AUC-PR difference to the operator; per-task results stay here, and
only ``metrics.json`` is kept for such a run (no weights: the model was a measurement).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import math
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, TypeAdapter, ValidationError

from pharmafl.common.errors import EnvelopeRejectedError, FederationError
from pharmafl.common.io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    sha256_bytes,
)
from pharmafl.common.settings import get_settings
from pharmafl.contract import (
    GAIN_SE_MIN_TASKS,
    PartnerRoundReport,
    PartnerUtilityReport,
    TrainSpec,
    TrunkConfig,
    TrunkLayout,
    flatten_trunk,
    round_prefix,
    trunk_from_bytes,
    trunk_to_bytes,
)
from pharmafl.evaluation import paired_task_deltas
from pharmafl.layout import PartnerLayout
from pharmafl.model import (
    LocalTrainer,
    MetricsReport,
    MultiTaskModel,
    PreparedData,
    TrainConfig,
    export_trunk,
    final_report,
    fit_trunk_to_data,
    initial_trunk,
    load_prepared,
    local_model_config,
    save_model_dir,
)
from pharmafl.partner.heads import record_ledger_head
from pharmafl.partner.join import check_roster_entry
from pharmafl.partner.reveals import FRESH_STATE, RevealRecord, StartRecord, state_key
from pharmafl.secure import (
    Envelope,
    EnvelopeGuard,
    ExchangeStore,
    Identity,
    Roster,
    SecAggClient,
    fetch,
    load_identity_dir,
    load_roster,
    open_payload,
    publish,
    sealed_recipients,
)

log = logging.getLogger(__name__)

SHARED_VALIDATION_METRICS = ("roc_auc", "auc_pr")


_SLOTS: dict[int, threading.Semaphore] = {}
_SLOTS_LOCK = threading.Lock()


def training_slot() -> contextlib.AbstractContextManager[object]:
    """A place among the partners training at once in this process (``PHARMAFL_PARALLEL_
    PARTNERS``; unset: half the cores, at least one; 0 admits all). Partners in threads of
    one process (the embedded launcher) may train concurrently: each trainer draws its
    randomness from generators of its own (:mod:`pharmafl.model.dropout`), so the result is
    the same as one after another. Only training is limited; the secure-aggregation stages,
    which wait for every partner, never hold a slot."""
    n = get_settings().parallel_partners
    if n is None:
        n = max(1, (os.cpu_count() or 2) // 2)
    if n == 0:
        return contextlib.nullcontext()
    with _SLOTS_LOCK:
        return _SLOTS.setdefault(n, threading.Semaphore(n))


@dataclass
class PartnerIdentity:
    """A partner's signing identity and the roster it pinned."""

    partner_dir: Path
    identity: Identity
    roster: Roster
    pin: str


def load_partner_identity(partner_dir: str | Path) -> PartnerIdentity:
    """Load ``identity/<name>.key.json``, ``roster.json`` and the pinned fingerprint."""
    layout = PartnerLayout(Path(partner_dir))
    identity = load_identity_dir(
        layout.identity,
        fix="create it with `pharmafl keys generate --out PARTNER_DIR/identity --id NAME`.",
    )
    pin_file = layout.roster_pin
    if not pin_file.is_file():
        raise FederationError(
            "no pinned roster fingerprint.",
            file=pin_file,
            fix="write the fingerprint the operator published out of band into roster.pin.",
        )
    pin = pin_file.read_text(encoding="utf-8").strip()
    roster = load_roster(layout.roster, pin)
    check_roster_entry(roster, identity, layout, layout.roster)
    StartRecord(layout.aggregated_starts).check(identity.public.fingerprint())
    return PartnerIdentity(layout.root, identity, roster, pin)


def _train_config(spec: TrainSpec, partner: str) -> TrainConfig:
    seed = int(np.random.SeedSequence([spec.seed, *partner.encode()]).generate_state(1)[0])
    return TrainConfig(
        seed=seed,
        epochs=10_000,
        batch_size=spec.local.batch_size,
        batch_ratio=spec.local.batch_ratio,
        lr=spec.local.learning_rate,
        weight_decay=spec.local.weight_decay,
        lr_steps=(),
        eval_every=0,
        fold_va=1,
        fold_te=0,
    )


def federated_run_dir(partner_dir: str | Path, run_id: str) -> Path:
    """A partner's folder for one run: ``models/federated/`` for the main run (``train``),
    ``models/runs/<run_id>/`` for any other."""
    return PartnerLayout(Path(partner_dir)).run_dir(run_id)


class _State:
    """Committed and pending trainer checkpoints of one partner in one run."""

    def __init__(self, partner_dir: Path, run_id: str) -> None:
        self.partner_dir = Path(partner_dir)
        self.dir = federated_run_dir(partner_dir, run_id)
        self.committed = self.dir / "committed.pt"
        self.pending_dir = self.dir / "pending"
        self.meta = self.dir / "state.json"
        #: What this round's update is trained from (set when the trainer loads the state).
        self.trained_from = FRESH_STATE

    def pending(self, round_id: str) -> Path:
        return self.pending_dir / f"{round_id}.pt"

    @property
    def reveals(self) -> RevealRecord:
        return RevealRecord(self.dir)

    def last_round(self) -> int:
        if not self.meta.is_file():
            return -1
        return int(json.loads(self.meta.read_text())["last_committed_round"])

    def settle(self, spec: TrainSpec) -> None:
        """Commit the previous round's pending state if it was aggregated; drop the rest."""
        if spec.round_index == 0 and not spec.final:
            # Round 0 starts a run: nothing an earlier run committed here may leak into it
            # (it would also block every commit: last_committed_round is that run's).
            self.meta.unlink(missing_ok=True)
            self.committed.unlink(missing_ok=True)
        if not self.pending_dir.is_dir():
            return
        pend = sorted(self.pending_dir.glob("*.pt"))
        previous = round_prefix(spec.run_id, spec.round_index - 1)
        done = [p for p in pend if p.stem.startswith(previous)]
        if spec.previous_round_completed and done and self.last_round() < spec.round_index - 1:
            done[-1].replace(self.committed)  # atomic on one filesystem
            atomic_write_text(
                self.meta, json.dumps({"last_committed_round": spec.round_index - 1}) + "\n"
            )
        for p in self.pending_dir.glob("*.pt"):
            if p.stem != spec.round_id:
                p.unlink(missing_ok=True)


_DATA_CACHE: dict[tuple[str, bool], tuple[tuple[tuple[str, int, int], ...], PreparedData]] = {}
_DATA_CACHE_LOCK = threading.Lock()
_DATA_CACHE_SIZE = 8


def prepared_data(prepared_dir: Path, *, with_graphs: bool) -> PreparedData:
    """:func:`load_prepared`, kept in memory between the rounds a process takes part in.

    A partner worker (or the embedded launcher) runs many rounds on the same ``prepared/``;
    reading it again every round cost ~0.2–0.4 s of each round's serial part. An entry is
    used only while every file in the folder has the same name, size and modification time
    (a re-run of ``pharmafl prepare`` replaces the folder, so it is read again). The data is
    only read by training, never modified.
    """
    d = Path(prepared_dir).resolve()
    stamp = tuple(
        sorted((p.name, st.st_mtime_ns, st.st_size) for p in d.iterdir() for st in [p.stat()])
    )
    key = (str(d), with_graphs)
    with _DATA_CACHE_LOCK:
        hit = _DATA_CACHE.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        data = load_prepared(d, with_graphs=with_graphs)
        _DATA_CACHE.pop(key, None)
        while len(_DATA_CACHE) >= _DATA_CACHE_SIZE:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[key] = (stamp, data)
        return data


def _trainer(
    pdir: Path, state: _State, spec: TrainSpec, partner: str, *, with_optimizer: bool = True
) -> LocalTrainer:
    """This round's trainer from the committed state; ``with_optimizer=False`` skips loading
    kept optimizer moments (the final evaluation trains heads with an optimizer of its own)."""
    data = prepared_data(PartnerLayout(pdir).prepared, with_graphs=spec.trunk.kind == "graph")
    trunk = fit_trunk_to_data(spec.trunk, data)
    config = _train_config(spec, partner)
    # Seeded: the head's initial weights shape every trunk update (and so the global trunk).
    model = MultiTaskModel.from_config(
        local_model_config(trunk, data.n_cls_tasks, data.n_reg_tasks), seed=config.seed
    )
    trainer = LocalTrainer(model, data, config)
    state.trained_from = FRESH_STATE
    if state.committed.is_file():
        raw = state.committed.read_bytes()  # read once: what is hashed is what is loaded
        keep = with_optimizer and spec.local.keep_optimizer
        _load_local_state(trainer, io.BytesIO(raw), state.committed, keep)
        state.trained_from = state_key(raw)
    return trainer


def _save_local_state(trainer: LocalTrainer, path: Path, keep_optimizer: bool) -> None:
    """Save what a partner keeps between rounds: its private head and its place in the data.

    Not the trunk (the next global trunk replaces it). The optimizer only when the plan says
    ``keep_optimizer``: by default it restarts every round, as in the FedAvg/FedProx reference
    implementations, which keeps the state small (a head, not three copies of a 32k-input
    trunk); kept, Adam's moments carry on over the next global trunk (same parameters, same
    order).
    """
    doc: dict[str, Any] = {
        "format": "pharmafl.partner_state/1",
        "heads": {k: v for k, v in trainer.model.state_dict().items() if k.startswith("heads.")},
        "counters": {"epoch": trainer.epoch, "step": trainer.step, "position": trainer.position},
    }
    if keep_optimizer:
        doc["optimizer"] = trainer.optimizer.state_dict()
    _write_state(doc, path)


def _write_state(doc: dict[str, Any], path: Path) -> None:
    buf = io.BytesIO()
    torch.save(doc, buf)
    atomic_write_bytes(path, buf.getvalue())


def _forget_moments(path: Path) -> None:
    """Rewrite a committed state without its optimizer moments (two trunk-sized arrays): a
    finished measurement run (a coalition of a contribution study) never trains again, and a
    retried final evaluation needs only the head and counters."""
    if not path.is_file():
        return
    doc = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    if doc.pop("optimizer", None) is not None:
        _write_state(doc, path)


def _load_local_state(
    trainer: LocalTrainer, source: io.BytesIO, path: Path, keep_optimizer: bool
) -> None:
    doc = torch.load(source, map_location="cpu", weights_only=True)
    if doc.get("format") != "pharmafl.partner_state/1":
        raise FederationError(
            "not a partner state file.", file=path, fix="delete this run's folder and rejoin."
        )
    try:  # a head of other shape (another number of tasks) raises; a missing one does not
        missing = trainer.model.load_state_dict(doc["heads"], strict=False)
        fits = not missing.unexpected_keys
        fits = fits and not any(k.startswith("heads.") for k in missing.missing_keys)
    except RuntimeError:
        fits = False
    if not fits:
        raise FederationError(
            "the saved private head does not fit this partner's tasks.",
            file=path,
            fix="prepared/ changed since the run started; start a new run.",
        )
    if keep_optimizer and "optimizer" in doc:
        try:
            trainer.optimizer.load_state_dict(doc["optimizer"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise FederationError(
                f"the saved optimizer state does not fit this partner's model ({exc}).",
                file=path,
                fix="prepared/ changed since the run started; start a new run.",
            ) from None
    c = doc["counters"]
    trainer.epoch, trainer.step, trainer.position = (
        int(c["epoch"]),
        int(c["step"]),
        int(c["position"]),
    )


def _global_trunk(
    store: ExchangeStore, who: PartnerIdentity, spec: TrainSpec, timeout_s: float
) -> dict[str, np.ndarray]:
    env = fetch(
        store,
        who.roster,
        me=who.identity.id,
        round_id=spec.round_id,
        kind="global_trunk",
        sender=who.roster.operator,
        timeout_s=timeout_s,
    )
    return trunk_from_bytes(_opened(env, who), expected_sha256=spec.global_trunk_sha256)


@functools.lru_cache(maxsize=8)
def _initial_trunk_sha256(trunk_json: str, seed: int) -> str:
    trunk = TypeAdapter(TrunkConfig).validate_json(trunk_json)
    return sha256_bytes(trunk_to_bytes(initial_trunk(trunk, seed)))


def check_initial_trunk(spec: TrainSpec) -> None:
    """Refuse a round 0 whose global trunk is not the initial trunk of its own trunk config
    and seed (this partner rebuilds it). Else an operator could start a second run from a
    copy of another run's trunk, nudged, and difference the two runs' sums
    (docs/security.md, "Differencing across runs")."""
    expected = _initial_trunk_sha256(spec.trunk.model_dump_json(), spec.seed)
    if expected != spec.global_trunk_sha256:
        raise FederationError(
            f"round 0 of run {spec.run_id!r} does not start from the initial trunk of its "
            f"seed {spec.seed} (expected {expected[:12]}…, got "
            f"{spec.global_trunk_sha256[:12]}…); refusing to train.",
            fix="the operator starts every run from `pharmafl federation init-trunk` of the "
            "run's own plan; report an operator that sends another trunk.",
        )


def _opened(env: Envelope, who: PartnerIdentity) -> bytes:
    """The payload of an operator message sealed to this partner (the store reads neither
    specs nor trunks)."""
    try:
        return open_payload(env, who.identity)
    except EnvelopeRejectedError as exc:
        raise FederationError(
            f"{who.identity.id} cannot read the operator's {env.kind} of round "
            f"{env.round_id}: {exc.message} Nothing was done.",
            fix="a partner only reads the rounds it is invited to; if it is, the operator must "
            "seal them to the encryption key of this partner's roster entry.",
        ) from None


def _already_joined(store: ExchangeStore, who: PartnerIdentity, round_id: str) -> bool:
    """Whether this partner's signed key advertisement for ``round_id`` is in the store."""
    me, operator = who.identity.id, who.roster.operator
    guard = EnvelopeGuard(who.roster, me=me, round_id=round_id)
    for env in store.list(round_id, "advertise", operator, sender=me):
        try:
            guard.check(env, kind="advertise", senders=(me,), recipient=operator)
        except EnvelopeRejectedError:
            continue  # not really mine (the store is untrusted)
        return True
    return False


def fetch_spec(
    store: ExchangeStore, who: PartnerIdentity, round_id: str, timeout_s: float
) -> TrainSpec:
    """The operator's signed spec of ``round_id`` (waits up to ``timeout_s``).

    The ledger head the spec carries is checked against the heads this partner recorded
    before, then recorded (:func:`~pharmafl.partner.heads.record_ledger_head`).

    Raises
    ------
    FederationError
        No valid spec in time, or its ledger head contradicts a recorded one (the operator
        rewrote or rolled back its ledger); then nothing is written.
    """
    env = fetch(
        store,
        who.roster,
        me=who.identity.id,
        round_id=round_id,
        kind="train_spec",
        sender=who.roster.operator,
        timeout_s=timeout_s,
    )
    spec = _parse_spec(_opened(env, who), round_id)
    record_ledger_head(who.partner_dir, spec)
    return spec


def _parse_spec(payload: bytes, round_id: str) -> TrainSpec:
    """The spec in a signed ``train_spec`` payload, refused unless every field is valid (its
    run and round ids become paths here) and it is the spec of ``round_id``."""
    try:
        spec = TrainSpec.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FederationError(
            f"the signed spec of round {round_id} is invalid at "
            f"{'.'.join(map(str, first['loc'])) or 'spec'}: {first['msg']} "
            f"(got {str(first.get('input'))[:100]!r}); nothing was done.",
            fix="report it to the operator: run and round ids must be plain names "
            "(letters, digits, '_', '.', '-'); the operator's software or key may be broken.",
        ) from None
    if spec.round_id != round_id:
        raise FederationError(
            f"the signed spec published for round {round_id} is for round {spec.round_id!r}; "
            "nothing was done.",
            fix="report it to the operator (a spec is only valid for its own round).",
        )
    return spec


def _shared_validation(trainer: LocalTrainer) -> dict[str, float]:
    if len(trainer.valid_rows) == 0:
        return {}
    metrics = trainer.evaluate("validation")
    out = {}
    for name in SHARED_VALIDATION_METRICS:
        v = metrics.metric(name)
        if math.isfinite(v):  # the report refuses NaN and infinities
            out[name] = round(float(v), 6)
    return out


def _report_to_operator(
    store: ExchangeStore, who: PartnerIdentity, round_id: str, report: BaseModel
) -> None:
    """Sign ``report``, seal it to the operator and put it in the store (kind
    ``partner_report``): scores and study gains are for the operator, not the store."""
    operator = who.roster.operator
    publish(
        store,
        who.identity,
        round_id=round_id,
        kind="partner_report",
        payload=report.model_dump_json().encode(),
        recipient=operator,
        seal_to=sealed_recipients(who.roster, (operator,)),
    )


def partner_round(
    partner_dir: str | Path,
    exchange_url: str,
    round_id: str,
    *,
    timeout_s: float = 600.0,
    poll_s: float = 0.2,
) -> PartnerRoundReport:
    """Take part in one federated round (see the module docstring).

    Raises
    ------
    FederationError, SecureAggregationError
        On a bad spec or trunk, or when the round cannot complete; the partner's committed
        state is untouched.
    """
    pdir = Path(partner_dir)
    who = load_partner_identity(pdir)
    store = ExchangeStore(exchange_url)
    spec = _round_spec(store, who, round_id, timeout_s)
    state = _State(pdir, spec.run_id)
    with state.reveals.exclusive(spec):  # one round of a run at a time at this partner
        return _take_part(state, who, store, spec, timeout_s, poll_s)


def _take_part(
    state: _State,
    who: PartnerIdentity,
    store: ExchangeStore,
    spec: TrainSpec,
    timeout_s: float,
    poll_s: float,
) -> PartnerRoundReport:
    """The round itself: keys, training, the masked update, the report."""
    t0 = time.perf_counter()
    if spec.round_index == 0:  # settle would drop the state: refuse first if it was revealed
        state.reveals.refuse(FRESH_STATE, spec)
        check_initial_trunk(spec)
    state.settle(spec)
    global_state = _global_trunk(store, who, spec, timeout_s)
    client = SecAggClient(
        who.identity,
        who.roster,
        store,
        spec.round_id,
        pinned_fingerprint=who.pin,
        rng=np.random.default_rng(),  # DP noise: fresh OS entropy, never a shared seed
        before_reveal=lambda contributors: _claim(state, who, spec, contributors),
    )
    _share_keys(client, who.identity.id, spec.round_id, timeout_s, poll_s)
    trainer, update, validation = _train(
        state.partner_dir, state, spec, who.identity.id, global_state
    )
    state.reveals.refuse(state.trained_from, spec)  # before the masked update leaves
    state.pending_dir.mkdir(parents=True, exist_ok=True)
    _save_local_state(trainer, state.pending(spec.round_id), spec.local.keep_optimizer)
    compute = time.perf_counter() - t0

    client.run(
        update,
        spec.local.fedavg_weight(len(trainer.train_rows)),
        timeout_s=timeout_s,
        poll_s=poll_s,
    )
    report = PartnerRoundReport(
        partner=who.identity.id,
        round_index=spec.round_index,
        examples=len(trainer.train_rows),
        validation=validation,
        compute_seconds=round(compute, 3),
    )
    _report_to_operator(store, who, spec.round_id, report)
    log.info("%s: round %d submitted", who.identity.id, spec.round_index)
    return report


def _claim(
    state: _State, who: PartnerIdentity, spec: TrainSpec, contributors: tuple[str, ...]
) -> None:
    """Right before revealing: this state and this trunk never feed a second aggregate
    that would difference with this one (:mod:`pharmafl.partner.reveals`)."""
    starts = StartRecord(PartnerLayout(state.partner_dir).aggregated_starts)
    starts.claim(spec, contributors, who.roster.security_policy, who.identity.public.fingerprint())
    state.reveals.claim(state.trained_from, spec)


def _round_spec(
    store: ExchangeStore, who: PartnerIdentity, round_id: str, timeout_s: float
) -> TrainSpec:
    """The signed spec of a training round this partner takes part in, and has not yet."""
    me = who.identity.id
    spec = fetch_spec(store, who, round_id, timeout_s)
    if spec.final:
        raise FederationError("this round is the final evaluation; use partner_finish.")
    if me not in spec.participants:
        raise FederationError(f"{me!r} is not a participant of round {round_id}.")
    if spec.round_index > 0 and not spec.previous_round_completed:
        # An operator moves to round r only once round r−1 was aggregated; a spec saying
        # otherwise would have the partner retrain from an already revealed state.
        raise FederationError(
            f"round {spec.round_index} says round {spec.round_index - 1} was not aggregated.",
            fix="the operator retries a round under its own index, never skips one.",
        )
    if _already_joined(store, who, round_id):
        # Its round keys lived only in memory: a restarted partner can never rejoin a round
        # it advertised in. Refuse before touching any state (settle would drop newer
        # pending states) or writing to the store.
        raise FederationError(
            f"{me} already took part in round {round_id}; a round is never redone.",
            fix="nothing to do: the operator aggregates without it or retries the round under "
            "a fresh round id.",
        )
    return spec


def _share_keys(
    client: SecAggClient, me: str, round_id: str, timeout_s: float, poll_s: float
) -> None:
    """Advertise and share the round's keys first: training is the long part."""
    deadline = time.monotonic() + timeout_s
    while client.stage in ("advertise", "share_keys"):
        if not client.step():
            if time.monotonic() > deadline:
                raise FederationError(f"{me}: round {round_id} stalled at {client.stage}.")
            time.sleep(poll_s)


def _train(
    pdir: Path, state: _State, spec: TrainSpec, me: str, global_state: dict[str, np.ndarray]
) -> tuple[LocalTrainer, np.ndarray, dict[str, float]]:
    """Local training from the global trunk: the trainer, the flat trunk update and the
    validation scalars the partner shares."""
    layout = TrunkLayout.of(global_state)
    reference = {k: torch.from_numpy(v.copy()) for k, v in global_state.items()}
    with training_slot():
        trainer = _trainer(pdir, state, spec, me)
        steps = max(spec.local.min_steps, round(spec.local.epochs * trainer.steps_per_epoch))
        trainer.train(
            steps=steps, global_trunk=reference, prox_mu=spec.local.prox_mu, evaluate=False
        )
        local = {k: v.numpy() for k, v in export_trunk(trainer.model).items()}
        validation = _shared_validation(trainer)
    update = flatten_trunk(local, layout) - flatten_trunk(global_state, layout)
    return trainer, update, validation


def partner_finish(
    partner_dir: str | Path, exchange_url: str, round_id: str, *, timeout_s: float = 600.0
) -> MetricsReport:
    """After the last round: fine-tune the private head on the frozen final global trunk
    (early-stopped on validation), score validation and test, write ``<run dir>/model``.

    Only the partner sees the per-task results. When the spec asks (contribution studies),
    it signs one scalar to the operator, its test AUC-PR gain over its local-only model, and
    keeps only ``<run dir>/metrics.json``.

    Raises
    ------
    FederationError
        On a bad spec or trunk; for a gain report, when the local-only baseline is missing
        or was scored on another test fold.
    """
    pdir = Path(partner_dir)
    who = load_partner_identity(pdir)
    store = ExchangeStore(exchange_url)
    spec = fetch_spec(store, who, round_id, timeout_s)
    if not spec.final:
        raise FederationError(f"round {round_id} is not the final evaluation round.")
    state = _State(pdir, spec.run_id)
    if spec.round_index <= state.last_round():  # a final evaluation comes after every round
        raise FederationError(
            f"final evaluation {round_id} comes before rounds this partner already committed.",
            fix="the operator publishes the final evaluation after the last round.",
        )
    local = _local_baseline(pdir) if spec.report_test_gain else None  # fail before training
    with state.reveals.exclusive(spec):
        state.settle(spec)
        global_state = _global_trunk(store, who, spec, timeout_s)
        with training_slot():
            report = _finish(pdir, state, spec, who.identity.id, global_state)
    if local is not None:
        gain, se = _test_gain(local, report, pdir)
        utility = PartnerUtilityReport(
            partner=who.identity.id, run_id=spec.run_id, gain=gain, gain_se=se
        )
        _report_to_operator(store, who, round_id, utility)
        log.info("%s: utility of run %s reported", who.identity.id, spec.run_id)
    return report


def _local_baseline(pdir: Path) -> MetricsReport:
    path = PartnerLayout(pdir).local_metrics
    if not path.is_file():
        raise FederationError(
            "no local-only model to measure the gain against.",
            file=path,
            fix="train it first: `pharmafl baseline PARTNER_DIR`.",
        )
    return MetricsReport.model_validate_json(path.read_text(encoding="utf-8"))


def _test_gain(
    local: MetricsReport, fed: MetricsReport, pdir: Path
) -> tuple[float | None, float | None]:
    """Test AUC-PR of ``fed`` minus ``local`` (means over the partner's tasks; None when
    either has no scorable test task) and its standard error over the tasks both scored
    (None below :data:`GAIN_SE_MIN_TASKS`)."""
    if local.fold_te != fed.fold_te:
        raise FederationError(
            f"the local-only model was tested on fold {local.fold_te}, federated runs on fold "
            f"{fed.fold_te}.",
            file=PartnerLayout(pdir).local_metrics,
            fix="retrain the local-only baseline with the default folds.",
        )
    a = local.test.metric("auc_pr") if local.test is not None else math.nan
    b = fed.test.metric("auc_pr") if fed.test is not None else math.nan
    gain = b - a
    if math.isnan(gain) or local.test is None or fed.test is None:
        return None, None
    diffs = paired_task_deltas(local.test, fed.test, "auc_pr")
    if diffs.size < GAIN_SE_MIN_TASKS:  # too few: gain ± error would reveal per-task gains
        return round(gain, 6), None
    return round(gain, 6), round(float(np.std(diffs, ddof=1) / math.sqrt(diffs.size)), 6)


def _finish(
    pdir: Path, state: _State, spec: TrainSpec, me: str, global_state: dict[str, np.ndarray]
) -> MetricsReport:
    base = _trainer(pdir, state, spec, me, with_optimizer=False)
    model = base.model
    model.load_state_dict(
        {**model.state_dict(), **{k: torch.from_numpy(v.copy()) for k, v in global_state.items()}}
    )
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith("trunk."))
    epochs = spec.local.head_finetune_epochs
    cfg = base.config.model_copy(
        update={
            "epochs": epochs,
            "eval_every": 1,
            "early_stopping_patience": 2,
            "selection_metric": "auc_pr" if base.data.n_cls_tasks else "rmse",
        }
    )
    head_params = [p for n, p in model.named_parameters() if n.startswith("heads.")]
    optimizer = torch.optim.Adam(head_params, lr=spec.local.learning_rate)
    trainer = LocalTrainer(model, base.data, cfg, optimizer=optimizer)
    if epochs > 0:
        trainer.train(evaluate=True)
    report = final_report(trainer, "federated")
    if spec.report_test_gain:  # a measurement: keep the scores, not 100+ MB of weights
        atomic_write_json(state.dir / "metrics.json", report.model_dump(mode="json"))
        _forget_moments(state.committed)
    else:
        save_model_dir(
            state.dir / "model",
            trainer.model,
            cfg,
            metrics=report,
            extra={
                "run_id": spec.run_id,
                "rounds": spec.round_index,
                "global_trunk_sha256": spec.global_trunk_sha256,
            },
        )
    if state.pending_dir.is_dir():
        shutil.rmtree(state.pending_dir, ignore_errors=True)
    return report


__all__ = [
    "PartnerIdentity",
    "federated_run_dir",
    "fetch_spec",
    "load_partner_identity",
    "partner_finish",
    "partner_round",
]
