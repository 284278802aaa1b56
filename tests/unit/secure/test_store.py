"""The exchange store round-trips envelopes through memory:// and a folder, atomically."""

from __future__ import annotations

import os

import pytest

from pharmafl.common.errors import EnvelopeRejectedError, SecureAggregationError
from pharmafl.secure import ExchangeStore, seal


def _env(c, sender="p00", kind="masked", recipient="operator", payload=b"data", round_id="r1"):
    return seal(
        c.partners[sender], round_id=round_id, kind=kind, recipient=recipient, payload=payload
    )


@pytest.fixture(params=["memory", "folder", "file-url"])
def store(request, memory_store, tmp_path) -> ExchangeStore:
    if request.param == "memory":
        return memory_store
    if request.param == "folder":
        return ExchangeStore(tmp_path / "exchange")
    return ExchangeStore(f"file://{tmp_path}/exchange")


def test_put_list_get_round_trip(store, consortium) -> None:
    a = _env(consortium, "p00", payload=bytes(range(256)) * 1000)
    b = _env(consortium, "p01")
    other = _env(consortium, "p02", kind="confirm")
    for env in (a, b, other):
        store.put(env)
    got = store.list("r1", "masked", "operator")
    assert sorted(got, key=lambda e: e.sender) == [a, b]
    assert store.list("r1", "masked", "operator", sender="p01") == [b]
    assert store.list("r1", "confirm", "operator") == [other]
    assert store.list("r9", "masked", "operator") == []
    key = store.key_of(a)
    assert store.get(key) == a
    store.purge("r1")
    assert store.list("r1", "masked", "operator") == []


def test_only_envelopes_are_stored(store, consortium) -> None:
    for thing in (b"raw bytes", {"kind": "masked"}, _env(consortium).model_dump()):
        with pytest.raises(SecureAggregationError, match="only Envelope objects"):
            store.put(thing)  # type: ignore[arg-type]
    env = _env(consortium)
    store.put(env)
    with pytest.raises(EnvelopeRejectedError, match="duplicate"):
        store.put(env)


def test_local_writes_are_atomic_and_partial_files_ignored(tmp_path, consortium) -> None:
    store = ExchangeStore(tmp_path)
    env = _env(consortium)
    key = store.put(env)
    folder = tmp_path / "r1" / "masked" / "operator"
    assert sorted(p.name for p in folder.iterdir()) == [key.rsplit("/", 1)[1]]  # no temp left
    # A writer that crashed mid-write leaves only a hidden temporary: never listed.
    (folder / f".p01.{'a' * 32}.env.tmp").write_bytes(env.to_bytes()[:10])
    (folder / "notes.txt").write_text("not an envelope")
    assert store.list("r1", "masked", "operator") == [env]
    assert os.stat(folder / key.rsplit("/", 1)[1]).st_size == len(env.to_bytes())


def test_garbage_and_misplaced_files_are_skipped(tmp_path, consortium, caplog) -> None:
    store = ExchangeStore(tmp_path)
    good = _env(consortium, "p00")
    store.put(good)
    folder = tmp_path / "r1" / "masked" / "operator"
    (folder / f"p01.{'b' * 32}.env").write_bytes(b"PFLENV1\n garbage")
    # An envelope from another round copied into this round's folder (untrusted store).
    old = _env(consortium, "p02", round_id="r0")
    (folder / f"p02.{old.nonce}.env").write_bytes(old.to_bytes())
    assert store.list("r1", "masked", "operator") == [good]
    assert "does not match its content" in caplog.text
    with pytest.raises(EnvelopeRejectedError, match="not an envelope key"):
        store.get("../../etc/passwd")


def test_bad_path_components_are_refused(memory_store, consortium) -> None:
    with pytest.raises(SecureAggregationError, match="unknown envelope kind"):
        memory_store.keys("r1", "nonsense", "operator")
    with pytest.raises(SecureAggregationError, match="invalid store path"):
        memory_store.keys("../x", "masked", "operator")


def test_purge_refuses_a_round_id_that_is_not_one_name(tmp_path) -> None:
    import pytest

    from pharmafl.common.errors import SecureAggregationError
    from pharmafl.secure import ExchangeStore

    (tmp_path / "keep").mkdir()
    store = ExchangeStore(str(tmp_path / "store"))
    with pytest.raises(SecureAggregationError, match="invalid round id"):
        store.purge("../keep")
    assert (tmp_path / "keep").is_dir()
