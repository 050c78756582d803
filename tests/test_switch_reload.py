"""A switcher reloaded from its checkpoint keeps its configured knobs (londi-evaluate's +override.switcher.*
takes effect), and where the checkpoint fixes one (an SB3 network's shape) a different configured value fails."""

import pytest

from londi.errors import ConfigError
from londi.switch.env import SwitchingEnv
from londi.switch.toy import CorridorTextEnv
from londi.switch.vec import SwitchingVecEnv
from tests.helpers import expert, hashed, random_policy, switcher


def _ready(name: str, *overrides: str):
    sw = switcher(name, *overrides)
    env = SwitchingVecEnv([SwitchingEnv(CorridorTextEnv(), random_policy("q"), expert("d"), encoder=hashed(16),
                                        **sw.env_options(False))])
    sw.setup(env, seed=0, total_steps=64)
    return sw


@pytest.mark.parametrize(("name", "key", "trained", "configured"), [
    ("londi", "cost", 0.05, 0.5), ("londi_b", "budget", 4, 0), ("lagrangian", "target_calls", 2.0, 5.0),
    ("cascade", "mu", 0.2, 0.7), ("oracle", "rule", "quick_wrong", "deepthink_right"),
])
def test_a_reloaded_switcher_keeps_its_configured_knob(tmp_path, name, key, trained, configured):
    _ready(name, f"switcher.{key}={trained}").save(tmp_path)
    sw = _ready(name, f"switcher.{key}={configured}")
    sw.load(tmp_path)
    assert getattr(sw, key) == configured
    if name == "londi_b":
        assert sw.env_options(False)["budget"] == configured  # the evaluation's budget mask


def test_an_sb3_switcher_configured_with_another_network_shape_fails_to_load(tmp_path):
    _ready("londi", "switcher.net_arch=[8]").save(tmp_path)
    sw = _ready("londi", "switcher.net_arch=[16,16]")
    with pytest.raises(ConfigError, match=r"trained with net_arch=\[8\], not the configured \[16, 16\].*"
                                          r"switcher.net_arch=\[8\]"):
        sw.load(tmp_path)
