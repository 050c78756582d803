"""The models of a cascade, cheapest first. Every prediction and update is paid for through a ComputeMeter.

A level maps a batch of items to class logits (`predict`) and, unless it is the final model, learns
online from labels (`learn`). `num_parameters` gives the paper's cost unit (cost relative to the final
model's parameter count); FLOPs and device seconds go to the meter under the level's `usage_key`
(inference: the level's name, or for a `PolicyLevel` its policy's) and `"{usage_key}/train"` (updates),
so a report can tell what routing cost from what learning cost.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import numpy as np

from londi.cascade.streams import StreamItem
from londi.lm.usage import DEVICE_SIMULATED, ComputeMeter, Usage

GIVEN_LABEL_LOGIT = 20.0  # a label given in the data becomes a near one-hot logit row


class Level(abc.ABC):
    """One model of the cascade."""

    trainable: bool = True
    simulated: bool = False
    compute_device: str = "cpu"  # where predict/learn run: the meter times them with that device's clock

    def __init__(self, name: str, num_classes: int, meter: ComputeMeter | None = None):
        self.name = name
        self.num_classes = num_classes
        self.meter = meter if meter is not None else ComputeMeter()
        self.n_updates = 0  # items learnt from so far (drives the forced-deferral schedule)

    @property
    @abc.abstractmethod
    def num_parameters(self) -> int:
        """Parameter count: the paper's cost unit, relative to the final level."""

    @property
    def usage_key(self) -> str:
        """The name this level's predictions are metered under (`"{usage_key}/train"`: its updates), where
        the cascade reads its compute."""
        return self.name

    def predict(self, items: Sequence[StreamItem]) -> np.ndarray:
        """Class logits, shape (len(items), num_classes); metered under the level's name."""
        usage = Usage(model=self.name, simulated=self.simulated)
        with self.meter.measure(usage, device=self.compute_device):
            logits = self._predict(items, usage)
            usage.calls += len(items)
        logits = np.asarray(logits, dtype=np.float64)
        if logits.shape != (len(items), self.num_classes):
            raise ValueError(f"{self.name}: logits shape {logits.shape}, expected {(len(items), self.num_classes)}")
        return logits

    def learn(self, items: Sequence[StreamItem], labels: Sequence[int], weights: Sequence[float] | None = None) -> None:
        """One online update towards `labels`; metered under `"{name}/train"`."""
        if not self.trainable:
            raise RuntimeError(f"{self.name} is the final model of the cascade and does not learn")
        if not items:
            return
        usage = Usage(model=f"{self.name}/train")
        with self.meter.measure(usage, device=self.compute_device):
            self._learn(items, np.asarray(labels, dtype=np.int64), None if weights is None else np.asarray(weights), usage)
        self.n_updates += len(items)

    def novelty(self, items: Sequence[StreamItem]) -> np.ndarray:
        """Per item, how unfamiliar its input is to this level in [0,1] (a deferral-head input that lets
        the head notice drift the level's probabilities do not show); 0 for levels that cannot tell."""
        return np.zeros(len(items))

    @abc.abstractmethod
    def _predict(self, items: Sequence[StreamItem], usage: Usage) -> np.ndarray: ...

    def _learn(self, items: Sequence[StreamItem], labels: np.ndarray, weights: np.ndarray | None, usage: Usage) -> None:
        raise NotImplementedError


class HashedLinearLevel(Level):
    """Multinomial logistic regression on hashed word n-grams, trained online by sparse SGD.

    Features come from scikit-learn's `HashingVectorizer`, which needs no fitting, so no statistic of
    future items leaks in (the published code fitted TF-IDF on the whole stream first). The update is a
    softmax-regression SGD step that touches only the item's non-zero features (O(nnz x classes)); we do
    not use `SGDClassifier.partial_fit` because for several classes it trains one-vs-rest margins (not
    softmax logits) and costs tens of milliseconds per call at 2^18 features, which a stream cannot afford.
    Before its first update it outputs uniform logits.
    """

    def __init__(
        self,
        name: str,
        num_classes: int,
        n_features: int = 2**18,
        ngram_range: tuple[int, int] = (1, 2),
        lr: float = 1.0,
        l2: float = 0.0,
        seed: int = 0,
        meter: ComputeMeter | None = None,
    ):
        super().__init__(name, num_classes, meter)
        from sklearn.feature_extraction.text import HashingVectorizer

        self.vectorizer = HashingVectorizer(
            n_features=n_features, ngram_range=tuple(ngram_range), alternate_sign=False, norm="l2"
        )
        self.n_features = n_features
        self.lr = lr
        self.l2 = l2
        self.weight = np.zeros((n_features, num_classes), dtype=np.float64)
        self.bias = np.zeros(num_classes, dtype=np.float64)
        self.seen = np.zeros(n_features, dtype=bool)  # features some update has touched

    @property
    def num_parameters(self) -> int:
        return (self.n_features + 1) * self.num_classes

    def _features(self, texts: Sequence[str]):
        return self.vectorizer.transform(list(texts)).tocsr()

    def novelty(self, items: Sequence[StreamItem]) -> np.ndarray:
        """Share of each item's (l2-normalised) feature mass on features no update has touched yet."""
        x = self._features([it.text for it in items])
        unseen = x.multiply(~self.seen[None, :]).power(2)
        return np.asarray(unseen.sum(axis=1)).ravel()

    def _logits(self, x) -> np.ndarray:
        return np.asarray(x @ self.weight) + self.bias

    def _predict(self, items: Sequence[StreamItem], usage: Usage) -> np.ndarray:
        x = self._features([it.text for it in items])
        usage.prompt_tokens += int(x.nnz)
        usage.flops += 2.0 * x.nnz * self.num_classes
        return self._logits(x)

    def _learn(self, items: Sequence[StreamItem], labels: np.ndarray, weights: np.ndarray | None, usage: Usage) -> None:
        x = self._features([it.text for it in items])
        usage.prompt_tokens += int(x.nnz)
        usage.flops += 6.0 * x.nnz * self.num_classes  # forward, gradient, update
        z = self._logits(x)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = p  # d CE / d logits = softmax - onehot
        g[np.arange(len(labels)), labels] -= 1.0
        if weights is not None:
            g *= weights[:, None]
        g /= len(labels)
        cols = np.unique(x.indices)
        self.seen[cols] = True
        if self.l2:
            self.weight[cols] *= 1.0 - self.lr * self.l2
        self.weight[cols] -= self.lr * np.asarray(x[:, cols].T @ g)
        self.bias -= self.lr * g.sum(axis=0)


class GivenLabelsLevel(Level):
    """The final model as labels given in the data (`item.final`), e.g. an LLM's stored annotations.

    It runs nothing, so it is charged as a simulated model of `simulated_params` parameters: FLOPs =
    2 x params x words of the item, device seconds = FLOPs / `simulated_flops_per_second`; every record
    says simulated.
    """

    trainable = False
    simulated = True

    def __init__(
        self,
        name: str,
        num_classes: int,
        simulated_params: int = 7_000_000_000,
        simulated_flops_per_second: float = 1e13,
        meter: ComputeMeter | None = None,
    ):
        super().__init__(name, num_classes, meter)
        self.simulated_params = int(simulated_params)
        self.simulated_flops_per_second = simulated_flops_per_second

    @property
    def num_parameters(self) -> int:
        return self.simulated_params

    def _predict(self, items: Sequence[StreamItem], usage: Usage) -> np.ndarray:
        out = np.zeros((len(items), self.num_classes))
        for i, it in enumerate(items):
            if it.final is None:
                raise ValueError(
                    f"{self.name}: item has no final-model label; this stream needs a real final level "
                    "(hf or policy) or a `final` column"
                )
            out[i, it.final] = GIVEN_LABEL_LOGIT
            tokens = len(it.text.split())
            usage.prompt_tokens += tokens
            usage.flops += 2.0 * self.simulated_params * tokens
        usage.device_kind = DEVICE_SIMULATED
        usage.device_seconds += usage.flops / self.simulated_flops_per_second
        return out


class HFClassifierLevel(Level):
    """A transformers sequence-classification model (a small LM with a classification head).

    Trainable levels take one AdamW step per `learn` call on the cross-entropy of the logits (never of
    probabilities); a frozen one (`trainable=False`) can serve as the final model.
    """

    def __init__(
        self,
        name: str,
        num_classes: int,
        model: Any,
        tokenizer: Any,
        lr: float = 1e-3,
        max_length: int = 128,
        trainable: bool = True,
        device: str = "cpu",
        meter: ComputeMeter | None = None,
    ):
        super().__init__(name, num_classes, meter)
        import torch

        self.torch = torch
        self.model = model.to(device)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.device = device
        self.trainable = trainable
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr) if trainable else None
        if getattr(self.model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
            self.model.config.pad_token_id = tokenizer.pad_token_id
        self._params = sum(p.numel() for p in self.model.parameters())

    @property
    def num_parameters(self) -> int:
        return self._params

    @property
    def compute_device(self) -> str:  # type: ignore[override]
        return str(self.device)

    def _encode(self, items: Sequence[StreamItem]):
        enc = self.tokenizer(
            [it.text for it in items], return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
        )
        return {k: v.to(self.device) for k, v in enc.items()}

    def _predict(self, items: Sequence[StreamItem], usage: Usage) -> np.ndarray:
        enc = self._encode(items)
        tokens = int(enc["attention_mask"].sum())
        usage.prompt_tokens += tokens
        usage.flops += 2.0 * self._params * tokens
        self.model.eval()
        with self.torch.no_grad():
            return self.model(**enc).logits.float().cpu().numpy()

    def _learn(self, items: Sequence[StreamItem], labels: np.ndarray, weights: np.ndarray | None, usage: Usage) -> None:
        torch = self.torch
        enc = self._encode(items)
        tokens = int(enc["attention_mask"].sum())
        usage.prompt_tokens += tokens
        usage.flops += 6.0 * self._params * tokens
        self.model.train()
        logits = self.model(**enc).logits
        loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(labels, device=self.device), reduction="none")
        if weights is not None:
            loss = loss * torch.as_tensor(weights, dtype=loss.dtype, device=self.device)
        self.optimizer.zero_grad()
        loss.mean().backward()
        self.optimizer.step()


class PolicyLevel(Level):
    """Any londi `LMPolicy` as a label scorer: the labels are its candidate actions, its scores the logits.

    This is how an hf model with a label-scoring head (`HFPolicy`) or an OpenAI-compatible endpoint becomes
    the final model. The policy is metered by its own meter under its own name (`usage_key`), whatever the
    level is called; this level charges no extra call, and the cascade reads both meters' totals.
    """

    trainable = False

    def __init__(self, name: str, labels: Sequence[str], policy: Any, instruction: str = "Classify the text."):
        super().__init__(name, len(labels), policy.meter)
        self.labels = tuple(labels)
        self.policy = policy
        self.instruction = instruction

    @property
    def num_parameters(self) -> int:
        return int(self.policy.num_parameters)

    @property
    def usage_key(self) -> str:
        return self.policy.name

    def predict(self, items: Sequence[StreamItem]) -> np.ndarray:
        from londi.lm.state import TextState

        states = [TextState(obs=it.text, mission=self.instruction, admissible_actions=self.labels) for it in items]
        results = self.policy.act(states)
        out = np.full((len(items), self.num_classes), -GIVEN_LABEL_LOGIT)
        for i, r in enumerate(results):
            if r.scores is not None:
                out[i] = np.asarray(r.scores, dtype=np.float64)
            else:  # generation-only backend: one-hot on its answer
                out[i, r.index] = GIVEN_LABEL_LOGIT
        return out

    def _predict(self, items: Sequence[StreamItem], usage: Usage) -> np.ndarray:  # pragma: no cover - see predict
        raise NotImplementedError
