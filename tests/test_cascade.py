"""Online cascade learning: deferral rule, losses, routing costs, determinism, stream readers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from londi.cascade.cascade import OnlineCascade
from londi.cascade.deferral import (
    DeferralHead,
    ForcedDeferral,
    cascade_loss,
    deferral_features,
    deferral_loss,
    should_defer,
)
from londi.cascade.levels import GivenLabelsLevel, HashedLinearLevel, PolicyLevel
from londi.cascade.streams import (
    StreamItem,
    from_items,
    read_csv,
    read_jsonl,
    synthetic_drifting,
    write_jsonl,
)
from londi.lm.policy import ActResult, LMPolicy
from londi.lm.usage import ComputeMeter

# ----------------------------------------------------------------------------- deferral rule and losses


def test_deferral_rule_answers_at_half_and_defers_above():
    assert not should_defer(0.5)
    assert not should_defer(0.1)
    assert should_defer(0.5001)
    np.testing.assert_array_equal(should_defer(np.array([0.2, 0.5, 0.9])), [False, False, True])


def test_cascade_loss_uses_logits_on_hand_made_case():
    logits = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    target = torch.tensor([0, 0])
    d = torch.tensor([0.25, 0.8])
    got = cascade_loss(logits, target, d, mu=0.4, next_cost=1.0)
    ce0 = math.log(1 + math.exp(-2.0))  # -log softmax([2,0])[0]
    ce1 = math.log(1 + math.exp(3.0))
    want = [0.75 * ce0 + 0.25 * 0.4, 0.2 * ce1 + 0.8 * 0.4]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    # feeding probabilities instead (the published code's defect) gives a different, flatter loss
    probs_as_logits = cascade_loss(torch.softmax(logits, 1), target, d, 0.4, 1.0)
    assert not torch.allclose(probs_as_logits, got)


def test_deferral_loss_pushes_d_up_only_when_the_level_is_worse_than_the_price():
    for ce, should_rise in ((2.0, True), (0.05, False)):
        d = torch.tensor([0.5], requires_grad=True)
        deferral_loss(d, torch.tensor([ce]), torch.tensor([0.0]), mu=0.5, next_cost=1.0).backward()
        assert (d.grad.item() < 0) == should_rise  # gradient descent moves d against the gradient


def test_calibration_term_targets_disagreement():
    d = torch.tensor([0.5], requires_grad=True)
    deferral_loss(d, torch.tensor([0.5]), torch.tensor([1.0]), mu=0.5, next_cost=1.0, calibration_weight=1.0).backward()
    assert d.grad.item() < 0  # cascade terms cancel (ce == mu*cost); BCE towards 1 raises d


def test_forced_deferral_decays_geometrically():
    f = ForcedDeferral(p0=0.8, decay=0.5)
    assert [f.probability(n) for n in range(3)] == [0.8, 0.4, 0.2]
    assert ForcedDeferral(p0=0.0).probability(0) == 0.0
    with pytest.raises(ValueError):
        ForcedDeferral(p0=1.5).probability(0)


def test_deferral_features_are_sorted_probs_and_normalised_entropy():
    f = deferral_features(np.log(np.array([[0.1, 0.6, 0.3]])), top_k=4)
    np.testing.assert_allclose(f[0, :4], [0.6, 0.3, 0.1, 0.0], atol=1e-6)
    ent = -(0.1 * math.log(0.1) + 0.6 * math.log(0.6) + 0.3 * math.log(0.3)) / math.log(3)
    assert f[0, 4] == pytest.approx(ent, rel=1e-5)
    assert DeferralHead(5)(torch.as_tensor(f)).shape == (1,)


# ----------------------------------------------------------------------------- routing and cost


def _cascade(meter, mu=0.5, forced_p0=0.0, init_defer=0.6, **kw):
    levels = [
        HashedLinearLevel("lr", 2, n_features=2**10, ngram_range=(1, 1), meter=meter),
        GivenLabelsLevel("llm", 2, simulated_params=10**6, meter=meter),
    ]
    return OnlineCascade(levels, mu=mu, forced=ForcedDeferral(forced_p0), head_init_defer=init_defer, **kw)


def test_item_answered_by_small_level_costs_only_its_own_level():
    meter = ComputeMeter()
    c = _cascade(meter, init_defer=0.05)  # head starts far on the "answer" side, no forced deferral
    item = StreamItem(text="alpha beta", gold=1, final=None)  # the final model would raise if called
    r = c.step(item)
    assert r.answered_by == 0 and not r.final_called
    assert r.cost_units == pytest.approx(c.costs[0]) and c.costs[0] < 1e-2
    assert "llm" not in meter.totals  # no final-model call, nothing charged for it
    assert meter.totals["lr"].calls == 1
    assert "lr/train" not in meter.totals  # no label, so (in the paper's mode) no learning either


def test_deferred_item_calls_final_once_and_trains_the_small_level():
    meter = ComputeMeter()
    c = _cascade(meter, init_defer=0.95)
    r = c.step(StreamItem(text="alpha beta", gold=1, final=1))
    assert r.final_called and r.answered_by == 1 and r.prediction == 1
    assert r.cost_units == pytest.approx(c.costs[0] + 1.0)
    assert meter.totals["llm"].calls == 1 and meter.totals["llm"].simulated
    assert meter.totals["llm"].flops == pytest.approx(2 * 10**6 * 2)
    assert c.levels[0].n_updates == 1
    assert np.argmax(c.levels[0].predict([StreamItem("alpha beta")])[0]) == 1


def test_learn_from_answered_audit_pays_for_its_final_call():
    meter = ComputeMeter()
    c = _cascade(meter, init_defer=0.05, learn_from_answered="audit", audit_rate=1.0)
    r = c.step(StreamItem(text="alpha", gold=0, final=0))
    assert r.answered_by == 0 and r.final_called
    assert r.cost_units == pytest.approx(c.costs[0] + 1.0)
    assert c.levels[0].n_updates == 1


def test_learn_from_answered_pseudo_trains_without_final_call():
    meter = ComputeMeter()
    c = _cascade(meter, init_defer=0.05, learn_from_answered="pseudo")
    r = c.step(StreamItem(text="alpha", gold=0, final=None))
    assert not r.final_called and c.levels[0].n_updates == 1


def test_determinism_given_seed_and_learning_beats_chance():
    def run(seed):
        meter = ComputeMeter()
        s = synthetic_drifting(n=600, num_classes=2, seed=3, drift_every=0)
        c = _cascade(meter, mu=1.2, forced_p0=1.0, seed=seed)
        c.forced.decay = 0.99
        summary = c.run(s, log_every=0)
        return {k: v for k, v in summary.items() if "seconds" not in k}

    a, b = run(1), run(1)
    assert a == b
    assert 0.0 < a["cascade/final_call_frac"] < 1.0
    assert a["cascade/agreement"] > 0.65  # 2 classes: chance is 0.5
    assert a["cascade/answered_frac/lr"] + a["cascade/answered_frac/llm"] == pytest.approx(1.0)


def test_run_logs_curves_through_a_run_logger(tmp_path):
    from londi.loggers import CSVLogger

    lg = CSVLogger(tmp_path)
    c = _cascade(ComputeMeter(), forced_p0=1.0)
    c.run(synthetic_drifting(n=50, num_classes=2, seed=0), logger=lg, log_every=20)
    lg.close()
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # header, items 20, 40, and the final 50
    assert "cascade/window_final_call_frac" in rows[0] and "compute/total_flops" in rows[0]


def test_cascade_rejects_bad_configuration():
    meter = ComputeMeter()
    final = GivenLabelsLevel("llm", 2, meter=meter)
    with pytest.raises(ValueError, match="two levels"):
        OnlineCascade([final])
    with pytest.raises(ValueError, match="learn_from_answered"):
        _cascade(meter, learn_from_answered="sometimes")


class _Served(LMPolicy):
    """A final model behind a policy (an endpoint, say): 7B parameters, 10 tokens per item."""

    @property
    def num_parameters(self) -> int:
        return 7_000_000_000

    def _act(self, states, usage, return_hidden):
        usage.calls += len(states)
        usage.prompt_tokens += 10 * len(states)
        usage.flops += 2 * 7e9 * 10 * len(states)
        return [ActResult(index=0, action=s.admissible_actions[0], scores=np.array([0.0, -5.0])) for s in states]


def test_a_policy_level_is_charged_whatever_its_policy_is_called():
    """The policy meters under its own name ("deepthink"), the cascade reports the level ("llm")."""
    labels = ["pos", "neg"]
    final = PolicyLevel("llm", labels, _Served(name="deepthink"))
    c = OnlineCascade([HashedLinearLevel("lr", 2, n_features=2**10), final], mu=0.1, seed=0)
    s = c.run(from_items("x", labels, [StreamItem(text=f"item {i} words", gold=0) for i in range(30)]))
    served = final.meter.totals["deepthink"]
    assert served.calls > 0 and s["compute/llm_calls"] == served.calls == round(s["cascade/final_call_frac"] * 30)
    assert s["compute/llm_flops"] == served.flops > 0
    assert s["compute/total_flops"] == pytest.approx(served.flops + s["compute/lr_flops"] + s["compute/lr_train_flops"])


def test_levels_that_would_share_a_meter_key_are_refused():
    meter = ComputeMeter()
    final = GivenLabelsLevel("llm", 2, meter=meter)
    with pytest.raises(ValueError, match="level names.*'lr' is used twice"):
        OnlineCascade([HashedLinearLevel("lr", 2, n_features=2**10, meter=meter),
                       HashedLinearLevel("lr", 2, n_features=2**10), final])
    named_lr = PolicyLevel("big", ["pos", "neg"], _Served(name="lr", meter=meter))  # metered under "lr"
    with pytest.raises(ValueError, match="one compute meter.*'lr' is used twice"):
        OnlineCascade([HashedLinearLevel("lr", 2, n_features=2**10, meter=meter), named_lr])


# ----------------------------------------------------------------------------- streams


def test_csv_reader_maps_names_indices_and_blanks(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("text,gold,final\ngood film,pos,pos\nbad film,neg,\nok,1,0\n")
    s = read_csv(p, labels=["neg", "pos"])
    items = list(s)
    assert [(i.text, i.gold, i.final) for i in items] == [("good film", 1, 1), ("bad film", 0, None), ("ok", 1, 0)]
    inferred = read_csv(p, final_col=None, limit=2)
    assert inferred.labels == ["pos", "neg", "1"] and len(list(inferred)) == 2
    with pytest.raises(ValueError, match="not one of"):
        list(read_csv(p, labels=["a", "b", "c"]))


def test_jsonl_round_trip(tmp_path):
    s = synthetic_drifting(n=30, seed=2)
    path = write_jsonl(s, tmp_path / "s.jsonl")
    back = read_jsonl(path, labels=s.labels)
    assert [(i.text, i.gold, i.final) for i in back] == [(i.text, i.gold, i.final) for i in s]
    assert json.loads(path.read_text().splitlines()[0])["gold"] in s.labels


def test_synthetic_stream_is_seeded_and_drifts():
    a = [i.text for i in synthetic_drifting(n=200, seed=5)]
    b = [i.text for i in synthetic_drifting(n=200, seed=5)]
    c = [i.text for i in synthetic_drifting(n=200, seed=6)]
    assert a == b and a != c
    items = list(synthetic_drifting(n=400, seed=0, drift_every=200, drift_fraction=1.0))
    early = {w for i in items[:200] for w in i.text.split() if w.startswith("w")}
    late = {w for i in items[200:] for w in i.text.split() if w.startswith("w")}
    assert not early & late  # full drift: the class vocabularies are replaced
    s = synthetic_drifting(n=4000, seed=0, final_accuracy=0.9)
    acc = np.mean([i.final == i.gold for i in s])
    assert 0.87 < acc < 0.93


def test_from_items_and_errors(tmp_path):
    s = from_items("x", ["a", "b"], [StreamItem("t", 0, 0)])
    assert len(s) == 1 and s.num_classes == 2
    with pytest.raises(FileNotFoundError):
        read_csv(tmp_path / "missing.csv")


# ----------------------------------------------------------------------------- error-probability heads, novelty


def test_error_loss_is_bce_on_disagreement_and_threshold_scales_with_mu():
    from londi.cascade.deferral import error_loss, error_threshold

    d = torch.tensor([0.2, 0.9])
    dis = torch.tensor([0.0, 1.0])
    want = -(math.log(0.8) + math.log(0.9)) / 2
    assert float(error_loss(d, dis)) == pytest.approx(want, rel=1e-5)
    assert error_threshold(0.3, 1.0) == pytest.approx(0.3)
    assert error_threshold(0.3, 0.1) == pytest.approx(0.03)


def test_error_objective_defers_iff_error_probability_exceeds_mu_times_cost():
    meter = ComputeMeter()
    c = _cascade(meter, mu=0.3, head_objective="error")
    assert c.defers(0, 0.31) and not c.defers(0, 0.29)
    paper = _cascade(ComputeMeter(), mu=0.3)
    assert not paper.defers(0, 0.31) and paper.defers(0, 0.51)  # the paper's rule ignores mu at decision time
    with pytest.raises(ValueError, match="head_objective"):
        _cascade(ComputeMeter(), head_objective="nope")


def test_error_head_learns_to_flag_a_level_that_is_wrong():
    from londi.cascade.deferral import HeadTrainer

    torch.manual_seed(0)
    h = HeadTrainer(3, hidden=8, lr=5e-2)
    x = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    dis = np.array([0.0, 1.0])
    for _ in range(200):
        h.update(x, np.zeros(2), dis, mu=0.5, next_cost=1.0, objective="error")
    d = h.d(x)
    assert d[0] < 0.1 and d[1] > 0.9


def test_hashed_level_novelty_drops_for_trained_words():
    lv = HashedLinearLevel("lr", 2, n_features=2**12, ngram_range=(1, 1))
    a, b = StreamItem("alpha beta"), StreamItem("gamma delta")
    np.testing.assert_allclose(lv.novelty([a, b]), [1.0, 1.0])
    lv.learn([a], [0])
    np.testing.assert_allclose(lv.novelty([a, b]), [0.0, 1.0], atol=1e-9)
    assert lv.novelty([StreamItem("alpha delta")])[0] == pytest.approx(0.5)


def test_forced_deferral_ignores_pseudo_label_updates():
    c = _cascade(ComputeMeter(), init_defer=0.05, learn_from_answered="both", audit_rate=0.0, forced_p0=0.0)
    r = c.step(StreamItem(text="alpha", gold=0, final=None))
    assert not r.final_called and c.levels[0].n_updates == 1  # learnt from its own answer...
    assert c.n_labelled == [0]  # ...which does not advance the forced-deferral schedule
