from __future__ import annotations

import numpy as np
import pytest

from pharmafl.common.errors import ConfigError
from pharmafl.contract import ServerOptimizerConfig
from pharmafl.server.optimizers import make_server_optimizer


def test_fedavg_applies_the_mean_update() -> None:
    opt = make_server_optimizer("fedavg")
    w = np.array([1.0, -2.0])
    np.testing.assert_allclose(opt.step(w, np.array([0.5, 0.25])), [1.5, -1.75])


def test_fedadam_first_step_by_hand() -> None:
    cfg = ServerOptimizerConfig(name="fedadam", lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    opt = make_server_optimizer(cfg)
    d = np.array([0.2, -0.4])
    m = 0.1 * d
    v = 0.99 * 1e-6 + 0.01 * d * d
    expected = 0.1 * m / (np.sqrt(v) + 1e-3)
    np.testing.assert_allclose(opt.step(np.zeros(2), d), expected)


def test_fedyogi_differs_from_fedadam_and_state_round_trips() -> None:
    rng = np.random.default_rng(0)
    deltas = [rng.normal(size=5) for _ in range(3)]
    adam, yogi = make_server_optimizer("fedadam"), make_server_optimizer("fedyogi")
    wa = wy = np.zeros(5)
    for d in deltas:
        wa, wy = adam.step(wa, d), yogi.step(wy, d)
    assert not np.allclose(wa, wy)
    clone = make_server_optimizer("fedyogi")
    clone.load_state_dict(yogi.state_dict())
    extra = rng.normal(size=5)
    np.testing.assert_array_equal(clone.step(wy, extra), yogi.step(wy, extra))


def test_unknown_optimizer_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="fedadam, fedavg, fedavgm, fedyogi"):
        make_server_optimizer("sgd")


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ConfigError, match="shape"):
        make_server_optimizer("fedavg").step(np.zeros(3), np.zeros(4))
