"""scripts/probe_policy.py: agreement with the bot per bot action, and whether a named object was picked up."""

from __future__ import annotations

from tests.helpers import expert, load_script, random_policy


def _probe_module():
    return load_script("probe_policy")


def test_the_bot_agrees_with_itself_and_picks_the_named_object():
    r = _probe_module().probe(expert(), "BabyAI-Text-PickupLocal-v0", episodes=3, seed=0)
    assert sum(r["total"].values()) > 0
    assert r["agree"] == r["total"] and not r["confusions"]
    assert r["outcomes"] == {("success", "picked a named object"): 3}
    moves = sum(r["total"][a] for a in ("turn left", "turn right", "go forward"))
    assert r["moves"][(True, True)] + r["moves"][(False, True)] == moves > 0  # every move counted, all agreed
    assert r["moves"][(True, True)] > 0  # the bot walks up to the named object: it is in view on the way


def test_a_random_policy_disagrees_and_is_counted_per_bot_action():
    r = _probe_module().probe(random_policy(seed=0), "BabyAI-Text-PickupLocal-v0", episodes=2, seed=0)
    n = sum(r["total"].values())
    assert 0 < sum(r["agree"].values()) < n
    assert sum(r["confusions"].values()) == n - sum(r["agree"].values())
    assert sum(r["outcomes"].values()) == 2


def test_the_teacher_compared_with_is_the_envs_expert():
    """With expert="myopic" the env's expert, which ExpertPolicy follows, is the myopic one: it agrees with
    itself there, and the teacher's actions counted differ from the bot's on the same episodes."""
    probe = _probe_module().probe
    r = probe(expert(), "BabyAI-Text-GoToLocal-v0", episodes=3, seed=0, expert="myopic")
    assert sum(r["total"].values()) > 0 and r["agree"] == r["total"]
    assert r["total"] != probe(expert(), "BabyAI-Text-GoToLocal-v0", episodes=3, seed=0)["total"]
