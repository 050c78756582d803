"""Every option of the `model` group builds in both roles (or fails only for what the user must set)."""

from pathlib import Path

import pytest

from londi import build
from londi.lm.hf import ModelLoadError, resolve_model_path
from londi.lm.policy import LMPolicy

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
OPTIONS = sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml"))


@pytest.mark.parametrize("role", ["quick", "deepthink"])
@pytest.mark.parametrize("option", OPTIONS)
def test_option_builds_in_both_roles(option, role):
    cfg = build.config([f"model@{role}={option}"])
    node = cfg[role]
    assert node._target_.startswith("londi.") and node.name == role
    if option == "hf":
        node.path = "/nonexistent/model/dir"
        with pytest.raises(ModelLoadError, match="/nonexistent/model/dir"):
            build.model(cfg, role)
        return
    if option == "openai":
        node.model = "served-model"
        node.num_params = 8e9
    if option == "distilled":
        assert node.path == f"londi-assets:models/babyai_{role}"  # the role picks the shipped model
        if not Path(resolve_model_path(node.path)).is_dir():
            pytest.skip(f"{node.path} is not shipped yet")
    pol = build.model(cfg, role)
    assert isinstance(pol, LMPolicy) and pol.name == role


def test_required_options_exist():
    assert {"expert", "random", "tiny_hf", "hf", "openai", "distilled", "online_ngram"} <= set(OPTIONS)
    assert build.config(["model@deepthink=expert"]).deepthink.simulated_params > 0  # charged as a model size


def test_a_missing_value_is_named_before_anything_runs():
    from londi.errors import ConfigError

    with pytest.raises(ConfigError, match="quick.path"):
        build.validate(build.config(["model@quick=hf"]))


def test_a_served_model_needs_its_size_before_anything_runs():
    """No default size: one of 0 charged every served-DEEPTHINK call 0 FLOPs, silently."""
    from londi.errors import ConfigError

    with pytest.raises(ConfigError, match=r"no value for deepthink\.num_params.*deepthink\.num_params="):
        build.validate(build.config(["model@deepthink=openai", "deepthink.model=served-model"]))
    cfg = build.config(["model@deepthink=openai", "deepthink.model=served-model", "deepthink.num_params=8e9"])
    assert build.model(cfg, "deepthink").num_parameters == 8_000_000_000
