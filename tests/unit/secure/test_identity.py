"""Identities are owner-only and never overwritten; the roster is signed and pinned."""

from __future__ import annotations

import json
import os
import pickle

import pytest

from pharmafl.common.errors import KeyFileError, SecureAggregationError
from pharmafl.common.io import canonical_json
from pharmafl.secure import (
    Identity,
    build_roster,
    generate_identity,
    load_identity,
    load_public_identity,
    load_roster,
    write_roster,
)
from pharmafl.secure.identity import create_roster_file, private_key_path, public_key_path


def test_generated_identity_is_owner_only_and_round_trips(tmp_path) -> None:
    ident = generate_identity(tmp_path, "alpha")
    priv, pub = private_key_path(tmp_path, "alpha"), public_key_path(tmp_path, "alpha")
    assert oct(os.stat(priv).st_mode & 0o777) == "0o600"
    loaded = load_identity(priv)
    assert loaded.public == ident.public == load_public_identity(pub)
    sig = loaded.sign(b"hello")
    assert len(sig) == 64
    secret_hex = json.loads(priv.read_text())["ed25519_private_key"]
    assert secret_hex not in repr(loaded) and secret_hex not in str(loaded)
    assert secret_hex not in pub.read_text()
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(loaded)


def test_existing_key_is_never_overwritten(tmp_path) -> None:
    generate_identity(tmp_path, "alpha")
    before = private_key_path(tmp_path, "alpha").read_bytes()
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        generate_identity(tmp_path, "alpha")
    assert private_key_path(tmp_path, "alpha").read_bytes() == before


def test_group_readable_or_malformed_key_is_refused(tmp_path) -> None:
    generate_identity(tmp_path, "alpha")
    priv = private_key_path(tmp_path, "alpha")
    os.chmod(priv, 0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_identity(priv)
    os.chmod(priv, 0o600)
    priv.write_text('{"id": "alpha"}')
    with pytest.raises(KeyFileError, match="malformed"):
        load_identity(priv)
    with pytest.raises(KeyFileError, match="not found"):
        load_identity(tmp_path / "missing.key.json")
    with pytest.raises(KeyFileError, match="invalid party id"):
        generate_identity(tmp_path, "../evil")


def test_roster_signature_and_pin(tmp_path) -> None:
    op = Identity.generate("op", "operator")
    members = [Identity.generate(n).public for n in ("beta", "alpha")]
    roster = build_roster(op, members, consortium="c")
    assert [m.id for m in roster.members] == ["alpha", "beta", "op"]
    assert roster.partners == ("alpha", "beta")
    path = write_roster(roster, tmp_path / "roster.json")
    assert load_roster(path, roster.fingerprint()) == roster
    with pytest.raises(SecureAggregationError, match="pinned fingerprint"):
        load_roster(path, "0" * 64)

    # A member key swapped in the file (e.g. by whoever distributes it) breaks the signature.
    doc = json.loads(path.read_text())
    doc["members"][0]["public_key"] = Identity.generate("alpha").public.public_key
    path.write_text(json.dumps(doc))
    with pytest.raises(SecureAggregationError, match="signature is invalid"):
        load_roster(path)

    # A roster "signed" by someone who is not the operator listed.
    mallory = Identity.generate("op", "operator")
    forged = build_roster(mallory, members, consortium="c")
    swapped = forged.model_copy(update={"members": roster.members})
    with pytest.raises(SecureAggregationError, match="signature is invalid"):
        swapped.verify()


def test_a_roster_looks_up_members_by_id() -> None:
    op = Identity.generate("op", "operator")
    alpha = Identity.generate("alpha").public
    roster = build_roster(op, [alpha], consortium="c")
    assert roster.get("alpha") == roster.member("alpha") == alpha
    assert roster.get("op") == op.public
    assert roster.get("mallory") is None
    with pytest.raises(SecureAggregationError, match="'mallory' is not in the roster of 'c'"):
        roster.member("mallory")


def test_only_an_operator_signs_a_roster(tmp_path) -> None:
    partner = Identity.generate("alpha")
    with pytest.raises(SecureAggregationError, match="only an operator signs"):
        build_roster(partner, [], consortium="c")


def test_create_roster_file_from_key_files(tmp_path) -> None:
    generate_identity(tmp_path, "op", "operator")
    generate_identity(tmp_path, "alpha")
    out = tmp_path / "roster.json"
    roster = create_roster_file(
        private_key_path(tmp_path, "op"),
        [public_key_path(tmp_path, "alpha")],
        out,
        consortium="c",
    )
    assert load_roster(out, roster.fingerprint()).partners == ("alpha",)
    with pytest.raises(SecureAggregationError, match="already exists"):
        create_roster_file(private_key_path(tmp_path, "op"), [], out, consortium="c")


def test_an_identity_folder_must_hold_exactly_one_key(tmp_path) -> None:
    from pharmafl.common.errors import FederationError
    from pharmafl.secure import generate_identity, load_identity_dir

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FederationError, match="expected one signing key in empty/, found 0"):
        load_identity_dir(empty, fix="generate one")
    two = tmp_path / "two"
    generate_identity(two, "alpha")
    generate_identity(two, "bravo")
    with pytest.raises(FederationError, match="found 2"):
        load_identity_dir(two, fix="keep one")
    one = tmp_path / "one"
    generate_identity(one, "alpha")
    assert load_identity_dir(one, fix="-").id == "alpha"


def test_roster_member_ids_are_unique() -> None:
    from pharmafl.secure import Identity, Roster

    alpha = Identity.generate("alpha").public
    with pytest.raises(ValueError, match="unique"):
        Roster(consortium="c", operator="op", members=(alpha, alpha))


def test_roster_members_are_sorted() -> None:
    from pharmafl.secure import Identity, Roster

    a, b = Identity.generate("alpha").public, Identity.generate("bravo").public
    with pytest.raises(ValueError, match="sorted"):
        Roster(consortium="c", operator="op", members=(b, a))


def test_the_encryption_key_comes_from_the_signing_key_and_is_in_the_public_file(
    tmp_path,
) -> None:
    ident = generate_identity(tmp_path, "alpha")
    doc = json.loads(public_key_path(tmp_path, "alpha").read_text())
    assert doc["encryption_key"] == ident.public.encryption_key
    assert len(ident.public.encryption_key_bytes()) == 32
    # Reloading the key file gives the same encryption key (no second key file).
    assert load_identity(private_key_path(tmp_path, "alpha")).public == ident.public
    assert ident.public.encryption_key != ident.public.public_key


def test_old_public_files_and_rosters_without_encryption_keys_still_verify(tmp_path) -> None:
    op = Identity.generate("op", "operator")
    alpha = Identity.generate("alpha")
    # A public identity file written before encryption keys existed.
    old_pub = tmp_path / "alpha.pub.json"
    old_doc = alpha.public.model_dump(exclude={"encryption_key", "consortium_key_check"})
    old_pub.write_text(json.dumps(old_doc))
    loaded = load_public_identity(old_pub)
    assert loaded.encryption_key is None
    with pytest.raises(SecureAggregationError, match="no encryption key"):
        loaded.encryption_key_bytes()
    # A roster signed back then: members without the field; the operator's too.
    old_op = op.public.model_copy(update={"encryption_key": None})
    roster = build_roster(op, [loaded], consortium="c").model_copy(
        update={"members": (loaded, old_op)}
    )
    legacy = {
        "consortium": "c",
        "version": 1,
        "operator": "op",
        "members": [old_doc, old_op.model_dump(exclude={"encryption_key", "consortium_key_check"})],
    }
    assert roster.signed_bytes() == b"pharmafl/roster/v1\n" + canonical_json(legacy)
    signed = roster.model_copy(update={"signature": op.sign(roster.signed_bytes()).hex()})
    path = tmp_path / "roster.json"
    path.write_text(
        json.dumps(
            signed.model_dump(mode="json", exclude={"policy"}) | {"members": legacy["members"]}
        )
    )
    assert load_roster(path, signed.fingerprint()) == signed
    # Today's rosters sign the encryption keys: changing one breaks the signature.
    new = build_roster(op, [alpha.public], consortium="c")
    other = Identity.generate("alpha").public.encryption_key
    forged_alpha = alpha.public.model_copy(update={"encryption_key": other})
    forged = new.model_copy(update={"members": (forged_alpha, op.public)})
    with pytest.raises(SecureAggregationError, match="signature is invalid"):
        forged.verify()
    assert new.verify() is new


def test_an_old_public_file_is_re_exported_with_its_encryption_key(tmp_path) -> None:
    from pharmafl.secure import export_public_identity

    ident = generate_identity(tmp_path, "alpha")
    pub = public_key_path(tmp_path, "alpha")
    pub.write_text(ident.public.model_dump_json(exclude={"encryption_key"}))
    assert load_public_identity(pub).encryption_key is None
    assert export_public_identity(private_key_path(tmp_path, "alpha"), tmp_path) == pub
    assert load_public_identity(pub) == ident.public
    other = Identity.generate("alpha").public
    pub.write_text(other.model_dump_json())
    with pytest.raises(KeyFileError, match="another signing key"):
        export_public_identity(private_key_path(tmp_path, "alpha"), tmp_path)


def test_a_roster_file_with_mixed_or_operator_key_checks_does_not_load(tmp_path) -> None:
    """Either every partner shows that it holds the consortium key or (a roster from before
    key checks) none does, and the operator, who never holds it, shows none. A roster that
    breaks this (a partner without a check hiding among those with one), signed by an
    operator whose own software skipped the check, is refused when a partner reads it."""
    op = Identity.generate("op", "operator")
    alpha, bravo = Identity.generate("alpha"), Identity.generate("bravo")
    roster = build_roster(op, [alpha.public, bravo.public], consortium="c")
    checked = alpha.public.model_copy(update={"consortium_key_check": "a" * 64})
    bravo_checked = bravo.public.model_copy(update={"consortium_key_check": "b" * 64})
    op_checked = op.public.model_copy(update={"consortium_key_check": "c" * 64})
    for members, problem in (
        ((checked, bravo.public, op.public), "bravo publish no consortium key check"),
        ((checked, bravo_checked, op_checked), "operator 'op' publishes a consortium key check"),
    ):
        unsigned = roster.model_copy(update={"members": members, "signature": None})
        signed = unsigned.model_copy(update={"signature": op.sign(unsigned.signed_bytes()).hex()})
        path = tmp_path / "roster.json"
        path.write_text(signed.model_dump_json())
        with pytest.raises(SecureAggregationError, match=problem):
            load_roster(path)


def test_a_roster_signed_by_a_partner_posing_as_its_operator_does_not_load(tmp_path) -> None:
    """A partner signs a roster that names itself as the operator (to invite members of its
    choosing, or to change the policy). The signature is good, but the signer's own signed
    entry says "partner": refused as not an operator's roster."""
    op = Identity.generate("op", "operator")
    alpha, bravo = Identity.generate("alpha"), Identity.generate("bravo")
    roster = build_roster(op, [alpha.public, bravo.public], consortium="c")
    unsigned = roster.model_copy(update={"operator": "alpha", "signature": None})
    signed = unsigned.model_copy(update={"signature": alpha.sign(unsigned.signed_bytes()).hex()})
    path = tmp_path / "roster.json"
    path.write_text(signed.model_dump_json())
    with pytest.raises(SecureAggregationError, match="roster signer 'alpha' is not an operator"):
        load_roster(path)


def test_a_roster_never_lists_another_key_under_the_operators_id() -> None:
    """The operator signs with its own key; a member list that carries another key under its
    id (a stale or planted .pub.json) is refused at signing."""
    op = Identity.generate("op", "operator")
    impostor = Identity.generate("op", "operator")
    with pytest.raises(SecureAggregationError, match="different key for operator 'op'"):
        build_roster(op, [impostor.public, Identity.generate("alpha").public], consortium="c")
