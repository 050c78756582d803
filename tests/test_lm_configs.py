"""Every configs/quick and configs/deepthink option instantiates (or fails only for what the user must set)."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from londi.lm.hf import ModelLoadError, resolve_model_path
from londi.lm.policy import LMPolicy

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
OPTIONS = sorted((p.parent.name, p.stem) for g in ("quick", "deepthink") for p in (CONFIGS / g).glob("*.yaml"))


def load(group, option):
    node = OmegaConf.load(CONFIGS / group / f"{option}.yaml")
    return OmegaConf.merge({"seed": 0, "device": "cpu", group: node})[group]  # as under config.yaml


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_option_instantiates(group, option):
    cfg = load(group, option)
    assert cfg._target_.startswith("londi.") and cfg.name == group
    if option == "hf":
        cfg.path = "/nonexistent/model/dir"
        with pytest.raises(Exception, match="/nonexistent/model/dir") as err:  # hydra wraps it
            instantiate(cfg)
        assert isinstance(err.value, ModelLoadError) or isinstance(err.value.__cause__, ModelLoadError)
        return
    if option == "openai":
        cfg.model = "served-model"
    if option == "distilled" and not Path(resolve_model_path(cfg.path)).is_dir():
        pytest.skip(f"{cfg.path} is not shipped yet")
    pol = instantiate(cfg)
    assert isinstance(pol, LMPolicy) and pol.name == group


def test_required_options_exist():
    for group in ("quick", "deepthink"):
        assert {"expert", "random", "tiny_hf", "hf", "openai", "distilled"} <= {o for g, o in OPTIONS if g == group}
    assert load("deepthink", "expert").simulated_params > 0  # charged as a configured model size
