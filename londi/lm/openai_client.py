"""`OpenAIPolicy`: any OpenAI-compatible chat/completions endpoint (vLLM, TGI, llama.cpp server, OpenAI).

The reply text is mapped onto an admissible action (`londi.lm.matching`). An endpoint that stays
unreachable after the retries, another HTTP error, or a reply that names no admissible action raises
`PolicyError` (the switcher may fall back to QUICK); it never acts at random. HTTP 401/403/404/405 (wrong
key, wrong model name, wrong URL) raise `EndpointError` at the first answer: every later request would
get the same answer, so neither retrying nor falling back can help.

The API key is read from the environment variable named by `api_key_env` at request time: it is never
stored on the object, in its repr, in error messages, in logs or in saved configs.

Cost: tokens from the reply's `usage` field (estimated as words when the server sends none, and flagged
in `ActResult.info`); FLOPs = 2 x `num_params` x tokens, so the served model's size is required (a size
of 0 made every call free and the reports' compute saved meaningless). Wall seconds are measured around
the batch, retries and failed attempts included. The server's device time is not observable from here,
so device seconds are `device_kind="remote"`: each request's latency at the client, every attempt's
included but not the waits between retries, summed over the batch's requests (with `max_concurrency` > 1
they run in pool threads, whose time the calling thread's clock would miss). A reply that names no
admissible action still costs its tokens, FLOPs and seconds (the server generated it), but only replies
mapped to an action count as calls (see `LMPolicy`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from londi.lm.matching import match_action
from londi.lm.policy import ActResult, EndpointError, LMPolicy, PolicyError
from londi.lm.prompts import PromptBuilder, count_words, get_prompt_builder
from londi.lm.state import TextState
from londi.lm.usage import DEVICE_REMOTE, ComputeMeter, Usage

log = logging.getLogger(__name__)

ENDPOINTS = ("chat", "completions")
DEFAULT_SYSTEM = (
    "You are an agent acting in a text environment. Reply with exactly one of the possible actions, "
    "copied verbatim, and nothing else."
)
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# Answers that every request would get again (configuration errors): stop at the first one.
_FATAL_STATUS = {401: "unauthorized", 403: "forbidden", 404: "not found", 405: "method not allowed"}


class OpenAIPolicy(LMPolicy):
    """A policy served by an OpenAI-compatible HTTP endpoint.

    Args:
        base_url: e.g. "http://localhost:8000/v1" (requests go to {base_url}/chat/completions or /completions).
        model: the served model's name. api_key_env: NAME of the env var holding the key (unset: no key sent).
        endpoint: "chat" or "completions". timeout: seconds per request.
        retries: extra attempts after a connection error, timeout or HTTP 408/429/5xx, waiting
            backoff x 2^k seconds (capped at max_backoff) before attempt k+1. HTTP 401/403/404/405 are
            never retried: they raise `EndpointError`.
        temperature, max_tokens: sampling settings sent to the server. history: past steps in the prompt.
        num_params: the served model's parameter count, for FLOPs (required, > 0). max_concurrency: parallel
            requests.
    """

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        model: str,
        api_key_env: str | None,
        endpoint: str,
        timeout: float,
        retries: int,
        backoff: float,
        max_backoff: float,
        temperature: float,
        max_tokens: int,
        history: int | None,
        system_prompt: str | None,
        num_params: float,
        max_concurrency: int,
        meter: ComputeMeter | None = None,
    ):
        super().__init__(name, meter)
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {ENDPOINTS}, got {endpoint!r}")
        if retries < 0 or timeout <= 0:
            raise ValueError(f"need retries >= 0 and timeout > 0, got retries={retries}, timeout={timeout}")
        try:
            size = math.nan if isinstance(num_params, bool) else float(num_params)
        except (TypeError, ValueError):
            size = math.nan
        if not (math.isfinite(size) and size >= 1):
            raise ValueError(
                f"{name}: num_params={num_params!r}, but the served model's parameter count is required: every "
                f"call is charged 2 x num_params x tokens FLOPs, and a size of 0 would make it free. Give "
                f"{name}.num_params=<served model's parameter count>, e.g. {name}.num_params=8e9 for "
                f"Llama-3.1-8B (londi-evaluate on an older run: +override.{name}.num_params=...)"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.endpoint = endpoint
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.history = history
        self.system_prompt = DEFAULT_SYSTEM if system_prompt is None else system_prompt
        self._num_params = int(size)
        self.max_concurrency = max(1, int(max_concurrency))
        self._builders: dict[str, PromptBuilder] = {}

    @property
    def num_parameters(self) -> int:
        return self._num_params

    @property
    def compute_device(self) -> str:
        """Served elsewhere: `_act` reports the requests' latencies as the device seconds."""
        return DEVICE_REMOTE

    @property
    def url(self) -> str:
        return f"{self.base_url}/{'chat/completions' if self.endpoint == 'chat' else 'completions'}"

    def __repr__(self) -> str:  # no key: only the variable's name
        return (f"OpenAIPolicy(name={self.name!r}, base_url={self.base_url!r}, model={self.model!r}, "
                f"endpoint={self.endpoint!r}, api_key_env={self.api_key_env!r})")

    # ---- prompt and request -------------------------------------------------------------------------
    def _builder(self, family: str) -> PromptBuilder:
        builder = self._builders.get(family)
        if builder is None:
            kw = {"history": int(self.history)} if self.history is not None else {}
            builder = self._builders[family] = get_prompt_builder(family, **kw)
        return builder

    @property
    def history_needed(self) -> int:
        if self.history is None:
            from londi.lm.prompts import prompt_families

            return max(self._builder(f).history_needed for f in prompt_families())
        return int(self.history)

    def prompt(self, state: TextState) -> str:
        """The environment prompt plus the list of possible actions to copy from."""
        text = self._builder(state.family).build(state)
        return f"{text}\n\nPossible actions: {'; '.join(state.admissible_actions)}\nNext action:"

    def _payload(self, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.endpoint == "chat":
            body["messages"] = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": prompt}]
        else:
            body["prompt"] = f"{self.system_prompt}\n\n{prompt}"
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _fatal(self, code: int, detail: str) -> EndpointError:
        """The error for a 401/403/404/405: status, URL, model and what to check (the key's variable, never the key)."""
        if self.api_key_env:
            key = f"the API key in ${self.api_key_env} (now {'set' if os.environ.get(self.api_key_env) else 'unset'})"
        else:
            key = "the API key (api_key_env is unset, so none is sent)"
        models = (f"that model {self.model!r} is one of the ids listed at {self.base_url}/models "
                  "and that base_url is the API root (e.g. http://host:8000/v1)")
        check = f"{key}; then {models}" if code in (401, 403) else f"{models}; then {key}"
        return EndpointError(
            f"{self.name}: {self.url} answered HTTP {code} {_FATAL_STATUS[code]} for model {self.model!r} ({detail}). "
            f"Retrying or falling back to QUICK cannot fix this, so the run stops: check {check}."
        )

    def _redact(self, text: str) -> str:
        """Server error bodies may echo the key: never let it into a message."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return text.replace(key, "***") if key else text

    def request(self, prompt: str, attempt_seconds: list[float] | None = None) -> dict[str, Any]:
        """POST one prompt with retries; the decoded JSON reply, or PolicyError (EndpointError for 401/403/404/405).

        `attempt_seconds` gets each attempt's latency appended (not the waits between them), failed ones too:
        the meter's device seconds for a model whose device it cannot see.
        """
        data = json.dumps(self._payload(prompt)).encode()
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))
            req = urllib.request.Request(self.url, data=data, headers=self._headers(), method="POST")
            t0 = time.perf_counter()
            try:
                try:
                    with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                        raw = resp.read()
                finally:
                    if attempt_seconds is not None:
                        attempt_seconds.append(time.perf_counter() - t0)
            except urllib.error.HTTPError as e:
                detail = self._redact(e.read()[:300].decode(errors="replace"))
                last = f"HTTP {e.code}: {detail}"
                if e.code in _FATAL_STATUS:
                    raise self._fatal(e.code, detail) from None
                if e.code not in _RETRY_STATUS:
                    raise PolicyError(f"{self.name}: {self.url} answered {last}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            else:
                try:
                    return json.loads(raw)
                except json.JSONDecodeError:
                    raise PolicyError(f"{self.name}: {self.url} sent a reply that is not JSON: {raw[:200]!r}") from None
            # info, not warning: a caller that falls back reports the failures itself (the SwitchingEnv, once per episode)
            log.info("%s: attempt %d/%d to %s failed (%s)", self.name, attempt + 1, self.retries + 1, self.url, last)
        raise PolicyError(
            f"{self.name}: endpoint {self.url} unreachable or failing after {self.retries + 1} attempts ({last}); "
            "check base_url and that the server is up"
        )

    def _reply_text(self, reply: dict[str, Any]) -> str:
        try:
            choice = reply["choices"][0]
            text = choice["message"]["content"] if self.endpoint == "chat" else choice["text"]
        except (KeyError, IndexError, TypeError):
            raise PolicyError(f"{self.name}: reply has no choices[0] text: {json.dumps(reply)[:200]}") from None
        return text or ""

    # ---- the backend --------------------------------------------------------------------------------
    def _one(self, state: TextState) -> tuple[ActResult | PolicyError | EndpointError, int, int, float]:
        """(action or error, prompt tokens, completion tokens, seconds the server spent answering)."""
        prompt = self.prompt(state)
        seconds: list[float] = []
        try:
            reply = self.request(prompt, seconds)
            text = self._reply_text(reply)
        except (PolicyError, EndpointError) as e:
            return e, 0, 0, sum(seconds)
        u = reply.get("usage") or {}
        estimated = "prompt_tokens" not in u
        p_tok = int(u.get("prompt_tokens", count_words(self.system_prompt) + count_words(prompt)))
        c_tok = int(u.get("completion_tokens", count_words(text)))
        idx = match_action(text, state.admissible_actions)
        if idx is None:
            error = PolicyError(f"{self.name}: reply {text[:200]!r} names none of the admissible actions")
            return error, p_tok, c_tok, sum(seconds)
        return ActResult(index=idx, action=state.admissible_actions[idx],
                         info={"reply": text, "tokens_estimated": estimated}), p_tok, c_tok, sum(seconds)

    def _act(self, states: Sequence[TextState], usage: Usage, return_hidden: bool) -> list[ActResult]:
        if len(states) == 1 or self.max_concurrency == 1:
            outs = [self._one(s) for s in states]
        else:
            with ThreadPoolExecutor(min(self.max_concurrency, len(states))) as pool:
                outs = list(pool.map(self._one, states))
        usage.calls += len(states)  # `act` keeps no calls if this batch raises below
        for _, p_tok, c_tok, seconds in outs:  # unusable replies too: the server generated them
            usage.prompt_tokens += p_tok
            usage.completion_tokens += c_tok
            usage.flops += 2.0 * self._num_params * (p_tok + c_tok)
            usage.device_seconds += seconds  # kept by the meter (compute_device = "remote")
        errors = [o for o, *_ in outs if not isinstance(o, ActResult)]
        if errors:  # a misconfigured endpoint first: it must stop the run, not be taken for a bad reply
            raise next((e for e in errors if isinstance(e, EndpointError)), errors[0])
        for r, p_tok, c_tok, _ in outs:  # each request's own tokens, as the server counted them
            r.usage = Usage(model=self.name, calls=1, prompt_tokens=p_tok, completion_tokens=c_tok,
                            flops=2.0 * self._num_params * (p_tok + c_tok))
        return [o for o, *_ in outs]  # type: ignore[misc]
