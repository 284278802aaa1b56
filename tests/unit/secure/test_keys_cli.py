"""``pharmafl keys``: generate (owner-only, no overwrite), roster, verify-roster."""

from __future__ import annotations

import json
import os
import re

import pytest
import typer
from typer.testing import CliRunner

from pharmafl.cli.keys import register
from pharmafl.common.errors import KeyFileError, SecureAggregationError
from pharmafl.secure import load_identity

runner = CliRunner()


def _fingerprint(output: str) -> str:
    """The fingerprint line's value (other output, e.g. log lines, may follow it)."""
    found = re.search(r"partners pin it\): ([0-9a-f]{64})", output)
    assert found, output
    return found.group(1)


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    return app


def test_generate_owner_only_and_refuses_overwrite(tmp_path) -> None:
    app = _app()
    res = runner.invoke(app, ["keys", "generate", "--out", str(tmp_path), "--id", "alpha"])
    assert res.exit_code == 0, res.output
    key = tmp_path / "alpha.key.json"
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    assert load_identity(key).role == "partner"
    assert "fingerprint" in res.output
    before = key.read_bytes()
    again = runner.invoke(app, ["keys", "generate", "--out", str(tmp_path), "--id", "alpha"])
    assert again.exit_code != 0
    assert isinstance(again.exception, KeyFileError)
    assert key.read_bytes() == before
    bad = runner.invoke(
        app, ["keys", "generate", "--out", str(tmp_path), "--id", "b", "--role", "x"]
    )
    assert bad.exit_code != 0


def test_roster_and_verify(tmp_path) -> None:
    app = _app()
    for args in (["--id", "op", "--role", "operator"], ["--id", "alpha"], ["--id", "beta"]):
        assert (
            runner.invoke(app, ["keys", "generate", "--out", str(tmp_path), *args]).exit_code == 0
        )
    roster = tmp_path / "roster.json"
    res = runner.invoke(
        app,
        [
            "keys",
            "roster",
            "--operator-key",
            str(tmp_path / "op.key.json"),
            "--member",
            str(tmp_path / "alpha.pub.json"),
            "--member",
            str(tmp_path / "beta.pub.json"),
            "--out",
            str(roster),
            "--consortium",
            "demo",
        ],
    )
    assert res.exit_code == 0, res.output
    fingerprint = _fingerprint(res.output)
    ok = runner.invoke(app, ["keys", "verify-roster", str(roster), "--pin", fingerprint])
    assert ok.exit_code == 0 and "roster OK" in ok.output and "alpha" in ok.output
    wrong = runner.invoke(app, ["keys", "verify-roster", str(roster), "--pin", "0" * 64])
    assert isinstance(wrong.exception, SecureAggregationError)
    # A partner's key cannot sign a roster.
    res = runner.invoke(
        app,
        [
            "keys",
            "roster",
            "--operator-key",
            str(tmp_path / "alpha.key.json"),
            "--member",
            str(tmp_path / "beta.pub.json"),
            "--out",
            str(tmp_path / "r2.json"),
        ],
    )
    assert isinstance(res.exception, SecureAggregationError)


def test_roster_signs_the_security_policy(tmp_path) -> None:
    from pharmafl.secure import load_roster

    app = _app()
    for args in (["--id", "op", "--role", "operator"], ["--id", "alpha"], ["--id", "beta"]):
        runner.invoke(app, ["keys", "generate", "--out", str(tmp_path), *args])
    roster = tmp_path / "roster.json"
    members = ["--member", str(tmp_path / "alpha.pub.json"), "--member"]
    members += [str(tmp_path / "beta.pub.json")]
    args = ["keys", "roster", "--operator-key", str(tmp_path / "op.key.json"), *members]
    res = runner.invoke(
        app, [*args, "--out", str(roster), "--collusion-bound", "1", "--min-ring-bits", "32"]
    )
    assert res.exit_code == 0, res.output
    assert "collusion bound 1, at least 3 partners a round" in res.output
    fingerprint = _fingerprint(res.output)
    doc = load_roster(roster, fingerprint)
    assert doc.security_policy.collusion_bound == 1
    assert doc.security_policy.min_ring_bits == 32  # no compressed rings in this consortium
    bad = runner.invoke(app, [*args, "--out", str(tmp_path / "bad.json"), "--min-ring-bits", "12"])
    assert bad.exit_code != 0 and "min_ring_bits" in str(bad.exception)
    assert not (tmp_path / "bad.json").exists()
    # The policy is signed: weakening it breaks the roster's signature.
    text = roster.read_text().replace('"collusion_bound": 1', '"collusion_bound": 0')
    roster.write_text(text)
    with pytest.raises(SecureAggregationError):
        load_roster(roster)


def test_roster_signs_valuation_groups_and_refuses_bad_ones(tmp_path) -> None:
    from pharmafl.secure import load_roster

    app = _app()
    names = ["a1", "a2", "a3", "b1", "b2", "b3"]
    runner.invoke(
        app, ["keys", "generate", "--out", str(tmp_path), "--id", "op", "--role", "operator"]
    )
    members: list[str] = []
    for name in names:
        runner.invoke(app, ["keys", "generate", "--out", str(tmp_path), "--id", name])
        members += ["--member", str(tmp_path / f"{name}.pub.json")]
    args = ["keys", "roster", "--operator-key", str(tmp_path / "op.key.json"), *members]
    groups = ["--valuation-group", "a1,a2,a3", "--valuation-group", "b1, b2, b3"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "r.json"), *groups])
    assert res.exit_code == 0, res.output
    policy = load_roster(tmp_path / "r.json").security_policy
    assert policy.valuation_groups == (("a1", "a2", "a3"), ("b1", "b2", "b3"))
    for bad, message in (
        (["--valuation-group", "a1,a2", "--valuation-group", "a3,b1,b2,b3"], "at least 3"),
        (["--valuation-group", "a1,a2,a3", "--valuation-group", "b1,b2,zz"], "in no group"),
    ):
        res = runner.invoke(app, [*args, "--out", str(tmp_path / "bad.json"), *bad])
        assert res.exit_code != 0 and message in str(res.exception), res.output
        assert not (tmp_path / "bad.json").exists()


def test_export_public_writes_the_encryption_key_of_an_existing_key(tmp_path) -> None:
    from pharmafl.secure.identity import load_identity, load_public_identity

    app = _app()
    runner.invoke(app, ["keys", "generate", "--out", str(tmp_path), "--id", "alpha"])
    pub = tmp_path / "alpha.pub.json"
    old = json.loads(pub.read_text())
    del old["encryption_key"]
    pub.write_text(json.dumps(old))
    assert load_public_identity(pub).encryption_key is None  # as written before the keys
    res = runner.invoke(
        app, ["keys", "export-public", str(tmp_path / "alpha.key.json"), "--out", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    key = load_identity(tmp_path / "alpha.key.json")
    assert load_public_identity(pub) == key.public and key.public.encryption_key is not None
