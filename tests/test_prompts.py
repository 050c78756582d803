"""Prompt builders: GLAM's exact BabyAI-Text string, ScienceWorld layout, history and token budget."""

import pytest

from londi.lm.prompts import (
    PromptBuilder,
    build_prompt,
    count_words,
    get_prompt_builder,
    prompt_families,
    register_prompt_builder,
)
from londi.lm.state import Step, TextState

BABYAI_ACTIONS = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle")

# GLAM's own prompt example (the format: docs/babyai_text.md), unwrapped onto one line.
SPEC_EXAMPLE = (
    "Possible action of the agent: turn left, turn right, go forward, pick up, drop, toggle \n Goal of the agent: "
    "pick up the red ball \n Observation 0: You see a wall 2 steps forward, You see a red ball 1 step left, "
    "\n Action 0: turn left \n Observation 1: You see a red ball 1 step forward, \n Action 1: "
)


def babyai_state(history=(), descriptions=("You see a red ball 1 step forward",)):
    return TextState(
        obs="\n".join(descriptions),
        mission="pick up the red ball",
        admissible_actions=BABYAI_ACTIONS,
        family="babyai_text",
        descriptions=tuple(descriptions),
        history=tuple(history),
    )


FIRST = Step(obs="", descriptions=("You see a wall 2 steps forward", "You see a red ball 1 step left"), action="turn left")


def test_babyai_matches_spec_example_exactly():
    assert build_prompt(babyai_state([FIRST])) == SPEC_EXAMPLE


def test_babyai_new_episode_and_empty_descriptions():
    p = build_prompt(babyai_state(descriptions=()))
    assert p.endswith(" \n Observation 0: \n Action 0: ")
    assert "Observation 1" not in p


def test_babyai_history_window_keeps_most_recent_and_renumbers():
    steps = [Step("", (f"You see a wall {i} steps forward",), "go forward") for i in range(2, 6)]
    p = build_prompt(babyai_state(steps))  # default GLAM memory: 2 past steps + the current observation
    assert "wall 4 steps" in p and "wall 5 steps" in p and "wall 3 steps" not in p
    assert "Observation 2: You see a red ball" in p and "Observation 3" not in p
    assert "wall 2 steps" not in build_prompt(babyai_state(steps), history=3)
    assert "Observation 0: You see a red ball" in build_prompt(babyai_state(steps), history=0)


def test_babyai_falls_back_to_obs_lines_without_descriptions():
    s = TextState(obs="Goal of the agent: x\nYou see a wall 1 step left", mission="x", admissible_actions=("drop",),
                  family="babyai_text")
    assert build_prompt(s).endswith("Observation 0: You see a wall 1 step left, \n Action 0: ")


def test_token_budget_drops_oldest_history_first():
    steps = [Step("", (f"You see a key {i} steps forward",), "go forward") for i in range(2, 4)]
    state = babyai_state(steps)
    full = get_prompt_builder("babyai_text").build(state)
    budget = count_words(full) - 1
    trimmed = get_prompt_builder("babyai_text", max_tokens=budget).build(state)
    assert count_words(trimmed) <= budget
    assert "key 2 steps" not in trimmed and "key 3 steps" in trimmed
    # The current observation always stays, even if it alone exceeds the budget.
    tiny = get_prompt_builder("babyai_text", max_tokens=1).build(state)
    assert "Observation 0: You see a red ball" in tiny
    # A custom counter (e.g. a tokenizer's) is what the budget is measured with.
    chars = get_prompt_builder("babyai_text", max_tokens=len(full) - 1, count_tokens=len).build(state)
    assert len(chars) < len(full) and "key 3 steps" in chars


def test_scienceworld_layout():
    steps = [Step("You are in the kitchen.", None, "open door to hallway")]
    s = TextState(obs="This room is called the hallway.\nIn your inventory, you see: an orange",
                  mission="Your task is to boil water.", admissible_actions=("look around", "open door to kitchen"),
                  family="scienceworld", history=tuple(steps))
    p = build_prompt(s)
    assert p == (
        "Task: Your task is to boil water.\n"
        "Observation 0: You are in the kitchen.\n"
        "Action 0: open door to hallway\n"
        "Observation 1: This room is called the hallway.\nIn your inventory, you see: an orange\n"
        "Action 1: "
    )
    assert "Possible actions: look around, open door to kitchen" in get_prompt_builder(
        "scienceworld", list_actions=True).build(s)


def test_registry_lookup_and_errors():
    assert {"babyai_text", "scienceworld", "generic"} <= set(prompt_families())
    with pytest.raises(KeyError, match="no prompt builder for env family 'nope'"):
        get_prompt_builder("nope")
    with pytest.raises(ValueError, match="history must be >= 0"):
        get_prompt_builder("babyai_text", history=-1)

    @register_prompt_builder("test_family")
    class Echo(PromptBuilder):
        def format(self, state, steps):
            return f"{len(steps)}|{state.obs}"

    s = TextState(obs="o", mission="m", admissible_actions=("a",), family="test_family",
                  history=(Step("x", None, "a"),) * 5)
    assert build_prompt(s) == "2|o"


def test_named_objects_moves_what_the_mission_refers_to_onto_its_own_line():
    from londi.lm.prompts import split_named

    other, named = split_named(
        ["You carry a blue key", "You see a wall 2 steps forward", "You see a red ball 1 step left",
         "You see a purple key 2 steps right", "You see a green box 1 step forward"],
        "put the red ball next to a key")
    # named: the carried object first, then the mission's order (the ball before any key), then the view's
    assert named == ["You carry a blue key", "You see a red ball 1 step left", "You see a purple key 2 steps right"]
    assert other == ["You see a wall 2 steps forward", "You see a green box 1 step forward"]
    # a colourless door names every door in view, and a key of a named door's colour is what opens it
    other, named = split_named(["You see a red key 1 step left", "You see a locked purple door 3 steps forward",
                                "You see a purple key 2 steps right"], "open the door")
    assert named == ["You see a locked purple door 3 steps forward", "You see a purple key 2 steps right"]
    assert other == ["You see a red key 1 step left"]
    assert split_named(["You see a red key 1 step left"], "open the green door") == (["You see a red key 1 step left"], [])
    assert split_named(["You see a green key 1 step left"], "open the green door") == ([], ["You see a green key 1 step left"])


def test_named_objects_prompt_is_the_glam_prompt_reordered():
    plain = get_prompt_builder("babyai_text", history=1).build(babyai_state([FIRST]))
    named = get_prompt_builder("babyai_text", history=1, named_objects=True).build(babyai_state([FIRST]))
    assert plain == SPEC_EXAMPLE
    assert named == (
        "Possible action of the agent: turn left, turn right, go forward, pick up, drop, toggle \n Goal of the agent: "
        "pick up the red ball \n Observation 0: You see a wall 2 steps forward,  \n Named: You see a red ball 1 step "
        "left, \n Action 0: turn left \n Observation 1:  \n Named: You see a red ball 1 step forward, \n Action 1: ")
    assert sorted(named.replace("\n Named:", "").split()) == sorted(plain.split())  # the same words, moved
    with pytest.raises(TypeError, match=r"no option \['named_object'\]"):
        get_prompt_builder("babyai_text", named_object=True)
    with pytest.raises(TypeError, match="no option"):
        get_prompt_builder("scienceworld", named_objects=True)
