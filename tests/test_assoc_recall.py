"""scripts/assoc_recall.py: the look-up that a small LM does not learn quickly, and the layout that removes it."""

from tests.helpers import load_script


def test_named_layout_is_learned_at_once_where_the_look_up_is_not():
    recall = load_script("assoc_recall")
    small = ["--hidden", "32", "--layers", "2", "--heads", "2", "--steps", "200", "--every", "1e9"]
    named = recall.main([*small, "--layout", "named"])[-1]
    plain = recall.main([*small, "--layout", "plain"])[-1]
    assert named["step"] == plain["step"] == 200
    assert named["accuracy"] >= 0.9  # the answer at a fixed place: read at once
    assert plain["accuracy"] <= 0.3  # the same values behind a look-up: near chance (1/8)
