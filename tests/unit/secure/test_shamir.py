"""Shamir t-of-n: any t shares recover the secret, fewer do not, bad shares are caught."""

from __future__ import annotations

import contextlib
import itertools
import os

import pytest

from pharmafl.common.errors import SecureAggregationError
from pharmafl.secure import shamir


@pytest.mark.parametrize(("t", "n"), [(1, 1), (2, 2), (2, 3), (3, 5), (7, 10)])
def test_any_t_shares_recover(t: int, n: int) -> None:
    secret = os.urandom(32)
    shares = shamir.split(secret, t, range(1, n + 1))
    assert all(len(s) == shamir.SHARE_BYTES for s in shares.values())
    for subset in itertools.islice(itertools.combinations(shares, t), 30):
        assert shamir.combine({x: shares[x] for x in subset}, t) == secret
    assert shamir.combine(shares, t) == secret  # all n, extras cross-checked


def test_fewer_than_t_shares_refuse_and_reveal_nothing_useful() -> None:
    secret = os.urandom(32)
    shares = shamir.split(secret, 3, [1, 2, 3, 4])
    with pytest.raises(SecureAggregationError, match="3 needed"):
        shamir.combine({1: shares[1], 2: shares[2]}, 3)
    # Interpolating t-1 shares as if t-1 were the threshold gives a different value.
    two = {1: shares[1], 2: shares[2]}
    # (The wrong polynomial's constant is usually not even a 32-byte value: then it raises.)
    with contextlib.suppress(SecureAggregationError):
        assert shamir.combine(two, 2) != secret


def test_secret_sharing_is_randomised() -> None:
    secret = bytes(32)
    assert shamir.split(secret, 2, [1, 2]) != shamir.split(secret, 2, [1, 2])


def test_corrupted_share_is_detected_when_extra_shares_exist() -> None:
    shares = shamir.split(os.urandom(32), 2, [1, 2, 3])
    bad = dict(shares)
    bad[3] = (int.from_bytes(bad[3], "big") ^ 1).to_bytes(shamir.SHARE_BYTES, "big")
    with pytest.raises(SecureAggregationError, match="inconsistent"):
        shamir.combine(bad, 2)


def test_bad_parameters() -> None:
    with pytest.raises(SecureAggregationError, match="32 bytes"):
        shamir.split(b"short", 2, [1, 2])
    with pytest.raises(SecureAggregationError, match="threshold"):
        shamir.split(bytes(32), 3, [1, 2])
    with pytest.raises(SecureAggregationError, match="distinct and positive"):
        shamir.split(bytes(32), 2, [1, 1])
    with pytest.raises(SecureAggregationError, match="malformed"):
        shamir.combine({1: b"x", 2: b"y"}, 2)
