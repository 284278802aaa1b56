"""Creating and joining a real consortium: key ceremony, roster signing and pinning.

Attacks written first: a partner (or a party the operator controls) joining with another
consortium key, an operator publishing a key check of its own, a roster that binds other
parameters, a roster for another key holder than the one pinned.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pharmafl.cli.main import app
from pharmafl.common.errors import (
    ConfigError,
    FederationError,
    KeyFileError,
    SecureAggregationError,
)
from pharmafl.common.params import ConsortiumParameters
from pharmafl.common.secret import key_check_key, load_consortium_key
from pharmafl.contract import FederationPlan
from pharmafl.layout import OperatorLayout, PartnerLayout
from pharmafl.partner.federated import load_partner_identity
from pharmafl.partner.join import join_consortium, key_check_of, pin_roster
from pharmafl.secure.identity import (
    Identity,
    build_roster,
    generate_identity,
    load_identity_dir,
    load_public_identity,
    public_key_path,
    write_identity,
    write_roster,
)
from pharmafl.secure.policy import SecurityPolicy
from pharmafl.server.create import create_consortium, sign_consortium_roster

PLAN = FederationPlan(rounds=1, trunk={"kind": "sparse", "hidden_sizes": [8], "dropouts": [0.0]})


def _create(root: Path, name: str = "acme") -> OperatorLayout:
    op = OperatorLayout(root / "operator")
    create_consortium(op.root, ConsortiumParameters(consortium_name=name), PLAN)
    return op


def _join_all(root: Path, op: OperatorLayout, names=("alpha", "bravo", "charlie")):
    first = join_consortium(root / names[0], op.consortium, new_key=True)
    rest = [
        join_consortium(root / n, op.consortium, key_file=first.folder / "key.json")
        for n in names[1:]
    ]
    return [first, *rest]


def test_create_writes_parameters_identity_plan_and_fits_the_trunk(tmp_path: Path) -> None:
    op = _create(tmp_path)
    assert json.loads(op.consortium.read_text())["consortium_name"] == "acme"
    plan = FederationPlan.model_validate_json(op.plan.read_text())
    assert plan.trunk.input_size == ConsortiumParameters().fingerprint.fold_size
    assert (op.identity / "operator.key.json").is_file()
    assert not any(p.name == "key.json" for p in op.root.rglob("*")), "operator holds no key"
    with pytest.raises(ConfigError, match="already holds a consortium"):
        _create(tmp_path)


def test_create_refuses_a_reference_hash_the_operator_cannot_check(tmp_path: Path) -> None:
    params = ConsortiumParameters(reference_hash="0" * 64)
    with pytest.raises(ConfigError, match="reference_hash"):
        create_consortium(tmp_path / "op", params, PLAN)
    assert not (tmp_path / "op" / "identity").exists()


def test_join_shares_one_key_and_publishes_only_identity_bound_checks(tmp_path: Path) -> None:
    op = _create(tmp_path)
    joined = _join_all(tmp_path, op)
    keys = [PartnerLayout(j.folder).key for j in joined]
    assert all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)
    assert len({k.read_bytes() for k in keys}) == 1
    key = load_consortium_key(keys[0])
    pubs = [load_public_identity(_pub(j)) for j in joined]
    for j, pub in zip(joined, pubs, strict=True):
        assert key.reveal().decode() not in _pub(j).read_text()  # never the key itself
        assert pub.consortium_key_check == j.key_check
        assert key_check_of(key_check_key(key, "acme"), pub) == j.key_check
    assert len({p.consortium_key_check for p in pubs}) == 3, "each check names its identity"
    # bound to the consortium too: the same key and identity elsewhere give another check
    assert key_check_of(key_check_key(key, "other"), pubs[0]) != joined[0].key_check
    assert (joined[1].folder / "partner.toml.example").is_file()
    assert (joined[1].folder / "exports").is_dir()


def test_join_refuses_bad_key_choices_and_leaves_nothing(tmp_path: Path) -> None:
    op = _create(tmp_path)
    with pytest.raises(ConfigError, match="either"):
        join_consortium(tmp_path / "a", op.consortium)
    weak = tmp_path / "weak.json"
    weak.write_text('{"key": "melloddy"}')
    weak.chmod(0o600)
    with pytest.raises(KeyFileError, match="shorter than 32"):
        join_consortium(tmp_path / "a", op.consortium, key_file=weak)
    assert not (tmp_path / "a" / "key.json").exists()
    assert not (tmp_path / "a" / "identity").exists()
    open_key = tmp_path / "open.json"
    open_key.write_text(json.dumps({"key": "k" * 64}))
    open_key.chmod(0o644)
    with pytest.raises(KeyFileError, match="group or others"):
        join_consortium(tmp_path / "a", op.consortium, key_file=open_key)
    join_consortium(tmp_path / "a", op.consortium, new_key=True)
    with pytest.raises(ConfigError, match="already holds a partner"):
        join_consortium(tmp_path / "a", op.consortium, new_key=True)


def _roster(tmp_path: Path, op: OperatorLayout, joined) -> str:
    pubs = [public_key_path(PartnerLayout(j.folder).identity, j.party_id) for j in joined]
    return sign_consortium_roster(op.root, pubs, SecurityPolicy()).fingerprint()


def test_roster_and_pin_then_training_identity_loads(tmp_path: Path) -> None:
    op = _create(tmp_path)
    joined = _join_all(tmp_path, op)
    fp = _roster(tmp_path, op, joined)
    for j in joined:
        roster = pin_roster(j.folder, op.roster, fp)
        assert (
            roster.parameter_hash == ConsortiumParameters(consortium_name="acme").parameter_hash()
        )
        assert load_partner_identity(j.folder).identity.id == j.party_id
    with pytest.raises(SecureAggregationError, match="pinned fingerprint"):
        pin_roster(joined[0].folder, op.roster, "0" * 64)


def _pin_refused(joined, op: OperatorLayout, fp: str, who: str) -> None:
    for j in joined:
        with pytest.raises(FederationError, match=f"{who}.*do not show the consortium key"):
            pin_roster(j.folder, op.roster, fp)
        assert not PartnerLayout(j.folder).roster_pin.exists()


def test_no_partner_pins_a_roster_with_a_partner_of_another_key(tmp_path: Path) -> None:
    """Attack: a partner (or an identity the operator controls) joins with its own key."""
    op = _create(tmp_path)
    joined = _join_all(tmp_path, op, ("alpha", "bravo"))
    rogue = join_consortium(tmp_path / "mallory", op.consortium, new_key=True)
    fp = _roster(tmp_path, op, [*joined, rogue])
    _pin_refused(joined, op, fp, "mallory")


def test_no_partner_pins_a_roster_with_a_sybil_that_copied_a_check(tmp_path: Path) -> None:
    """Attack (adversarial review of issue 12): the operator makes identities of its own and
    copies an honest partner's published key check into their public files."""
    op = _create(tmp_path)
    joined = _join_all(tmp_path, op)
    sybil = Identity.generate("delta", "partner")
    copied = load_public_identity(_pub(joined[0])).consortium_key_check
    write_identity(sybil, tmp_path / "sybil", key_check=copied)
    pubs = [*[_pub(j) for j in joined], public_key_path(tmp_path / "sybil", "delta")]
    fp = sign_consortium_roster(op.root, pubs, SecurityPolicy()).fingerprint()
    _pin_refused(joined, op, fp, "delta")


def test_no_partner_pins_a_roster_without_checks_or_parameters(tmp_path: Path) -> None:
    """Attack (adversarial review): the operator drops every key check and the parameters'
    hash, hoping partners then check nothing."""
    op = _create(tmp_path)
    joined = _join_all(tmp_path, op)
    operator = load_identity_dir(op.identity, fix="")
    bare = [
        load_public_identity(_pub(j)).model_copy(update={"consortium_key_check": None})
        for j in joined
    ]
    roster = build_roster(operator, bare, consortium="acme")
    write_roster(roster, tmp_path / "bare.json")
    for j in joined:
        with pytest.raises(FederationError, match="do not show the consortium key"):
            pin_roster(j.folder, tmp_path / "bare.json", roster.fingerprint())
    pubs = [_pub(j) for j in joined]
    no_params = build_roster(
        operator, [load_public_identity(p) for p in pubs], consortium="acme", version=2
    )
    write_roster(no_params, tmp_path / "noparams.json")
    with pytest.raises(FederationError, match="binds no consortium parameters"):
        pin_roster(joined[0].folder, tmp_path / "noparams.json", no_params.fingerprint())
    plain = tmp_path / "plain"  # a public file without a key check is refused at signing
    generate_identity(plain, "plain")
    with pytest.raises(SecureAggregationError, match="no consortium key check"):
        sign_consortium_roster(op.root, [public_key_path(plain, "plain"), *pubs], SecurityPolicy())


def test_pinning_creates_the_start_record_and_rounds_need_it(tmp_path: Path) -> None:
    """A partner whose record of aggregated starts was lost (a wiped volume) must not take
    part again under the same identity (adversarial review of issue 12)."""
    op = _create(tmp_path)
    joined = _join_all(tmp_path, op)
    fp = _roster(tmp_path, op, joined)
    for j in joined:
        pin_roster(j.folder, op.roster, fp)
    layout = PartnerLayout(joined[0].folder)
    assert layout.aggregated_starts.is_file()
    load_partner_identity(layout.root)
    layout.aggregated_starts.unlink()
    with pytest.raises(FederationError, match="record of aggregated starting trunks is missing"):
        load_partner_identity(layout.root)
    other = PartnerLayout(joined[1].folder).aggregated_starts.read_bytes()
    layout.aggregated_starts.write_bytes(other)  # another partner's record
    with pytest.raises(FederationError, match="belongs to another identity"):
        load_partner_identity(layout.root)
    # Nor without the fingerprint it pinned out of band: a roster alone proves nothing.
    layout.roster_pin.unlink()
    with pytest.raises(FederationError, match="no pinned roster fingerprint") as err:
        load_partner_identity(layout.root)
    assert str(layout.roster_pin) in str(err.value)


def _pub(j) -> Path:
    return public_key_path(PartnerLayout(j.folder).identity, j.party_id)


def test_pin_refuses_a_roster_for_another_key_or_other_parameters(tmp_path: Path) -> None:
    op = _create(tmp_path)
    joined = _join_all(tmp_path, op)
    fp = _roster(tmp_path, op, joined)
    victim = PartnerLayout(joined[2].folder)
    good_key = victim.key.read_bytes()
    victim.key.write_text(json.dumps({"key": "x" * 64}))  # it holds another key than the roster's
    with pytest.raises(FederationError, match="do not show the consortium key"):
        pin_roster(victim.root, op.roster, fp)
    victim.key.write_bytes(good_key)
    params = ConsortiumParameters(consortium_name="acme").model_copy(
        update={"folding": ConsortiumParameters().folding.model_copy(update={"nfolds": 3})}
    )
    victim.consortium.write_text(params.model_dump_json())
    with pytest.raises(FederationError, match="differs from the consortium parameters"):
        pin_roster(victim.root, op.roster, fp)
    assert not victim.roster_pin.exists(), "nothing pinned after a refusal"


def test_a_partner_refuses_a_roster_that_lists_an_impostor_under_its_name(
    tmp_path: Path,
) -> None:
    """Attack: the operator and a partner that holds the consortium key (alpha) make an
    identity named 'charlie' with a valid key check. Only charlie can tell it is not its
    own key, and it pins nothing: no round can then run with charlie's name on it unnoticed."""
    op = _create(tmp_path)
    joined = _join_all(tmp_path, op)
    impostor = Identity.generate("charlie", "partner")
    check_key = key_check_key(load_consortium_key(PartnerLayout(joined[0].folder).key), "acme")
    write_identity(
        impostor, tmp_path / "impostor", key_check=key_check_of(check_key, impostor.public)
    )
    pubs = [_pub(joined[0]), _pub(joined[1]), public_key_path(tmp_path / "impostor", "charlie")]
    fp = sign_consortium_roster(op.root, pubs, SecurityPolicy()).fingerprint()
    victim = PartnerLayout(joined[2].folder)
    with pytest.raises(FederationError, match="another signing key for 'charlie'"):
        pin_roster(victim.root, op.roster, fp)
    assert not victim.roster_pin.exists()


def test_a_partner_refuses_a_roster_with_another_encryption_key_for_it(tmp_path: Path) -> None:
    """Attack: the operator lists its own encryption key under charlie's name (signing key
    and key check untouched), so that what is sealed to charlie opens for it. charlie sees
    the swap and pins nothing; the others cannot tell, and need not: charlie's refusal
    keeps it out of every round."""
    op = _create(tmp_path)
    joined = _join_all(tmp_path, op)
    pub = _pub(joined[2])
    doc = json.loads(pub.read_text())
    doc["encryption_key"] = Identity.generate("charlie", "partner").public.encryption_key
    pub.write_text(json.dumps(doc))
    fp = _roster(tmp_path, op, joined)
    victim = PartnerLayout(joined[2].folder)
    with pytest.raises(FederationError, match="another encryption key for 'charlie'") as err:
        pin_roster(victim.root, op.roster, fp)
    assert "export-public" in (err.value.fix or "") and not victim.roster_pin.exists()


def test_roster_versions_only_go_up(tmp_path: Path) -> None:
    op = _create(tmp_path)
    joined = _join_all(tmp_path, op)
    pubs = [_pub(j) for j in joined]
    assert sign_consortium_roster(op.root, pubs, SecurityPolicy()).version == 1
    assert sign_consortium_roster(op.root, pubs, SecurityPolicy()).version == 2
    with pytest.raises(SecureAggregationError, match="already at version 2"):
        sign_consortium_roster(op.root, pubs, SecurityPolicy(), version=2)


def test_cli_create_join_roster_pin(tmp_path: Path) -> None:
    runner = CliRunner()
    opdir = tmp_path / "operator"

    def ok(*args: str) -> str:
        res = runner.invoke(app, list(args))
        assert res.exit_code == 0, res.output
        return res.output

    out = ok("consortium", "create", str(opdir), "--name", "acme", "--hidden", "16")
    assert "initial trunk sha256" in out and (opdir / "initial_trunk.npz").is_file()
    cfile = str(opdir / "consortium.json")
    out = ok("consortium", "join", str(tmp_path / "alpha"), "--consortium", cfile, "--new-key")
    assert "out of band" in out
    key = str(tmp_path / "alpha" / "key.json")
    ok("consortium", "join", str(tmp_path / "bravo"), "--consortium", cfile, "--key", key)
    members = [
        a
        for n in ("alpha", "bravo")
        for a in ("--member", str(tmp_path / n / "identity" / f"{n}.pub.json"))
    ]
    out = ok("consortium", "roster", str(opdir), *members)
    fp = re.search(r"partners pin it\): ([0-9a-f]{64})", out).group(1)  # type: ignore[union-attr]
    for n in ("alpha", "bravo"):
        out = ok(
            "consortium",
            "pin",
            str(tmp_path / n),
            "--roster",
            str(opdir / "roster.json"),
            "--fingerprint",
            fp,
        )
        assert "one consortium key" in out
    bad = runner.invoke(app, ["consortium", "join", str(tmp_path / "c"), "--consortium", cfile])
    assert isinstance(bad.exception, ConfigError) and "--new-key" in str(bad.exception)
