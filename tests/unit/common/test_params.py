from __future__ import annotations

import pytest

from pharmafl.common.errors import ConfigError
from pharmafl.common.params import ConsortiumParameters, load_consortium_parameters


def test_defaults_follow_melloddy_tuner() -> None:
    p = ConsortiumParameters()
    assert (p.fingerprint.radius, p.fingerprint.fold_size, p.folding.nfolds) == (3, 32000, 5)
    assert p.tasks.classification_quorum["OTHER"].num_active_total == 25
    assert p.tasks.adaptive_thresholds == (8.0, 7.0, 6.0, 5.0, 4.7, 4.4)


def test_parameter_hash_changes_with_parameters() -> None:
    a = ConsortiumParameters()
    b = ConsortiumParameters.model_validate({"fingerprint": {"fold_size": 1024}})
    assert a.parameter_hash() != b.parameter_hash()
    assert a.parameter_hash() == ConsortiumParameters().parameter_hash()


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("c.toml", "[fingerprint]\nradius = 99\n", "fingerprint.radius"),
        ("c.yaml", "folding: {nfolds: 1}\n", "folding.nfolds"),
        ("c.json", '{"unknown": 1}', "unknown"),
        ("c.json", "{not json", "cannot parse"),
        ("c.toml", "[tasks.credibility_range.OTHER]\nmin = 9.0\nmax = 3.0\n", "min 9.0 > max 3.0"),
    ],
)
def test_bad_parameters_name_the_field(tmp_path, name, text, match) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_consortium_parameters(path)
    assert str(path) in str(info.value)


def test_a_missing_parameters_file_is_named_with_the_fix(tmp_path) -> None:
    path = tmp_path / "consortium.json"
    with pytest.raises(ConfigError, match="not found") as info:
        load_consortium_parameters(path)
    assert str(path) in str(info.value) and "consortium.json" in (info.value.fix or "")
