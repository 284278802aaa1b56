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


def test_purge_of_some_kinds_keeps_the_others(store, consortium) -> None:
    for env in (
        _env(consortium),
        _env(consortium, kind="confirm"),
        _env(consortium, round_id="r2"),
    ):
        store.put(env)
    store.purge("r1", ["masked", "global_trunk"])  # global_trunk: none there, no error
    assert store.list("r1", "masked", "operator") == []
    assert len(store.list("r1", "confirm", "operator")) == 1
    assert len(store.list("r2", "masked", "operator")) == 1
    with pytest.raises(SecureAggregationError, match="unknown envelope kinds"):
        store.purge("r1", ["../r2"])
    assert len(store.list("r2", "masked", "operator")) == 1


def test_purge_refuses_a_round_id_that_is_not_one_name(tmp_path) -> None:
    import pytest

    from pharmafl.common.errors import SecureAggregationError
    from pharmafl.secure import ExchangeStore

    (tmp_path / "keep").mkdir()
    store = ExchangeStore(str(tmp_path / "store"))
    with pytest.raises(SecureAggregationError, match="invalid round id"):
        store.purge("../keep")
    assert (tmp_path / "keep").is_dir()


def _unreachable(root, seconds: float):
    """Make a local store unreachable for ``seconds``: its folder is swapped for a file
    (which even root cannot write through), then put back."""
    import threading
    import time

    aside = root.with_name(root.name + ".aside")
    root.rename(aside)
    root.write_bytes(b"not a folder")

    def restore() -> None:
        time.sleep(seconds)
        root.unlink()
        aside.rename(root)

    thread = threading.Thread(target=restore)
    thread.start()
    return thread


def test_a_short_outage_is_ridden_out_with_two_log_lines(
    tmp_path, consortium, caplog, monkeypatch
) -> None:
    import time

    monkeypatch.setenv("PHARMAFL_RETRY_WINDOW_S", "30")
    store = ExchangeStore(tmp_path / "exchange")
    first = _env(consortium, "p00")
    store.put(first)
    caplog.set_level("INFO")
    thread = _unreachable(tmp_path / "exchange", 1.5)
    t0 = time.monotonic()
    later = _env(consortium, "p01")
    store.put(later)  # waits for the store, then writes
    waited = time.monotonic() - t0
    thread.join()
    assert 1.4 <= waited <= 6.0
    assert store.list("r1", "masked", "operator") == sorted([first, later], key=lambda e: e.sender)
    lines = [r.getMessage() for r in caplog.records if "exchange store" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "unreachable (NotADirectoryError" in lines[0] and "retrying" in lines[0]
    assert "reachable again after" in lines[1]

    # reads ride it out too
    thread = _unreachable(tmp_path / "exchange", 1.0)
    assert store.keys("r1", "masked", "operator") == [store.key_of(first), store.key_of(later)]
    thread.join()


def test_a_lasting_outage_fails_with_one_clear_error(tmp_path, consortium, monkeypatch) -> None:
    import time

    from pharmafl.common.errors import ServiceUnavailableError

    monkeypatch.setenv("PHARMAFL_RETRY_WINDOW_S", "1")
    store = ExchangeStore(tmp_path / "exchange")
    store.put(_env(consortium, "p00"))
    thread = _unreachable(tmp_path / "exchange", 3.0)
    t0 = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as err:
        store.put(_env(consortium, "p01"))
    assert time.monotonic() - t0 < 2.5
    thread.join()
    text = str(err.value)
    assert text.startswith(f"exchange store {tmp_path / 'exchange'} unreachable for 1 s")
    assert "pharmafl train --resume" in text
    assert err.value.__cause__ is None and err.value.__suppress_context__
    # a missing envelope is an answer, not an outage: no retry
    t0 = time.monotonic()
    with pytest.raises(EnvelopeRejectedError, match="not in the store"):
        store.get("r1/masked/operator/p09." + "0" * 32 + ".env")
    assert time.monotonic() - t0 < 0.5


def test_purge_never_follows_a_link_out_of_the_store(tmp_path, consortium, caplog) -> None:
    """Whoever else writes to the store plants a round folder that links elsewhere: the
    operator's purge of that round must not delete the link's target."""
    victim = tmp_path / "victim"
    (victim / "masked").mkdir(parents=True)
    (victim / "masked" / "keep.txt").write_text("precious")
    store = ExchangeStore(tmp_path / "exchange")
    store.put(_env(consortium))  # the store exists
    (tmp_path / "exchange" / "r9").symlink_to(victim)
    with caplog.at_level("WARNING"):
        store.purge("r9", ["masked"])
        store.purge("r9")
    assert (victim / "masked" / "keep.txt").read_text() == "precious"
    assert "leads out of the store" in caplog.text
    store.purge("r1", ["masked"])  # a genuine round still goes
    assert store.list("r1", "masked", "operator") == []


def test_a_store_without_room_for_any_envelope_is_a_configuration_error(tmp_path) -> None:
    with pytest.raises(SecureAggregationError, match="max_envelope_bytes must be positive"):
        ExchangeStore(tmp_path / "exchange", max_envelope_bytes=0)


def test_an_envelope_behind_a_folder_linked_out_of_the_store_is_not_read(
    tmp_path, consortium, caplog
) -> None:
    """Whoever else writes to the store replaces a round's folder by a link to a folder
    outside it, holding a genuine envelope. Links are never followed out of the store, also
    above the file itself (where ``O_NOFOLLOW`` does not look): the envelope is skipped."""
    outside = ExchangeStore(tmp_path / "elsewhere")
    env = _env(consortium)
    outside.put(env)
    store = ExchangeStore(tmp_path / "exchange")
    store.put(_env(consortium, round_id="r0"))  # the store exists
    (tmp_path / "exchange" / "r1").symlink_to(tmp_path / "elsewhere" / "r1")
    with caplog.at_level("WARNING"):
        assert store.list("r1", "masked", "operator") == []
    assert "links to a file outside the store" in caplog.text
