"""OpenAIPolicy against a real local HTTP server (http.server on 127.0.0.1 in a thread), not a mock, and
(slow) against `transformers serve`, a real OpenAI-compatible server, serving the shipped QUICK model."""

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import envs
from londi.lm.policy import EndpointError, PolicyError
from londi.lm.state import TextState
from londi.lm.usage import ComputeMeter
from londi.switch.env import SwitchingEnv
from tests.helpers import hashed, openai_policy, random_policy

SECRET = "sk-test-0123456789-do-not-leak"
STATE = TextState(obs="", mission="go to the red ball", admissible_actions=("turn left", "turn right", "go forward"),
                  family="babyai_text", descriptions=("You see a red ball 2 steps forward",))


class FakeServer:
    """Answers from a script: each request pops the next (status, body) (the last one repeats)."""

    def __init__(self):
        self.script: list[tuple[int, dict | str]] = []
        self.requests: list[dict] = []
        self.delay = 0.0  # seconds the "model" takes per request
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                status, reply = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                time.sleep(server.delay)
                data = (reply if isinstance(reply, str) else json.dumps(reply)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


def chat(text, usage=True):
    reply = {"choices": [{"message": {"role": "assistant", "content": text}}]}
    if usage:
        reply["usage"] = {"prompt_tokens": 50, "completion_tokens": 3}
    return reply


def policy(url, meter=None, **kw):
    kw.setdefault("retries", 2)
    kw.setdefault("backoff", 0.01)
    return openai_policy(name="dt", base_url=url, model="m", api_key_env="LONDI_TEST_KEY", timeout=2.0,
                         meter=meter or ComputeMeter(), **kw)


def test_good_reply_is_mapped_and_metered(server, monkeypatch):
    monkeypatch.setenv("LONDI_TEST_KEY", SECRET)
    server.script = [(200, chat("Go forward."))]
    meter = ComputeMeter()
    pol = policy(server.url, meter, num_params=1000)
    r = pol.act([STATE, STATE])
    assert [x.action for x in r] == ["go forward", "go forward"]
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == f"Bearer {SECRET}"
    assert req["body"]["model"] == "m" and "Goal of the agent: go to the red ball" in req["body"]["messages"][1]["content"]
    u = meter.totals["dt"]
    assert (u.calls, u.prompt_tokens, u.completion_tokens, u.flops) == (2, 100, 6, 2 * 1000 * 106)


@pytest.mark.parametrize("num_params", [0, -1, None, float("nan"), "unknown"])
def test_a_served_model_without_its_size_is_refused_with_the_fix(num_params):
    """0 (the old default, "unknown") charged every call 0 FLOPs: the reports' compute saved came out empty."""
    with pytest.raises(ValueError, match=r"deepthink\.num_params=<served model's parameter count>"):
        openai_policy(name="deepthink", num_params=num_params)


def test_device_seconds_are_each_requests_latency_summed_though_they_run_in_pool_threads(server):
    """The server's device is not visible here: its seconds are the requests' latencies, labelled remote."""
    server.delay = 0.2
    server.script = [(200, chat("go forward"))]
    meter = ComputeMeter()
    policy(server.url, meter, max_concurrency=4).act([STATE] * 4)
    u = meter.totals["dt"]
    assert u.device_kind == "remote"
    assert u.device_seconds >= 4 * 0.2  # the calling thread's CPU time was ~0: the requests ran in pool threads
    assert u.wall_seconds < u.device_seconds  # side by side


def test_remote_seconds_count_failed_attempts_but_not_the_waits_between_retries(server):
    server.script = [(503, "busy"), (200, chat("turn right"))]
    meter = ComputeMeter()
    policy(server.url, meter, retries=1, backoff=0.5).act_one(STATE)
    u = meter.totals["dt"]
    assert u.wall_seconds >= 0.5 and u.device_seconds < 0.25
    server.delay, server.script = 0.1, [(503, "busy")]
    with pytest.raises(PolicyError):
        policy(server.url, meter, retries=1, backoff=0.01).act_one(STATE)
    assert meter.totals["dt"].device_seconds - u.device_seconds >= 2 * 0.1  # both attempts kept the server busy


def test_completions_endpoint_and_missing_usage(server):
    server.script = [(200, {"choices": [{"text": " turn left\n"}]})]
    r = policy(server.url, endpoint="completions").act_one(STATE)
    assert r.action == "turn left" and r.info["tokens_estimated"]
    assert server.requests[0]["path"] == "/v1/completions" and server.requests[0]["auth"] is None


def test_unusable_reply_raises_never_random(server):
    server.script = [(200, chat("I would like to dance"))]
    meter = ComputeMeter()
    with pytest.raises(PolicyError, match="names none of the admissible actions"):
        policy(server.url, meter).act_one(STATE)
    u = meter.totals["dt"]
    assert u.calls == 0 and u.tokens == 53  # no action came back: the tokens were spent, no call was made
    server.script = [(200, {"unexpected": True})]
    with pytest.raises(PolicyError, match="no choices"):
        policy(server.url).act_one(STATE)


def test_retries_with_backoff_then_success(server):
    server.script = [(503, "busy"), (500, "oops"), (200, chat("turn right"))]
    assert policy(server.url, retries=2).act_one(STATE).action == "turn right"
    assert len(server.requests) == 3


def test_retries_exhausted_and_client_errors_not_retried(server):
    server.script = [(503, "busy")]
    with pytest.raises(PolicyError, match="after 2 attempts.*HTTP 503"):
        policy(server.url, retries=1).act_one(STATE)
    assert len(server.requests) == 2
    server.requests.clear()
    server.script = [(400, "prompt too long")]  # may be this state's fault: not retried, but QUICK may act
    with pytest.raises(PolicyError, match="HTTP 400"):
        policy(server.url, retries=3).act_one(STATE)
    assert len(server.requests) == 1


def _babyai_env(deepthink, **kw):
    return SwitchingEnv(envs.make("BabyAI-Text-GoToLocal-v0"), random_policy("q"), deepthink,
                        encoder=hashed(16), **kw)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_refused_endpoint_stops_the_run_at_the_first_answer(server, monkeypatch, status):
    monkeypatch.setenv("LONDI_TEST_KEY", SECRET)
    server.script = [(status, {"error": {"message": f"Incorrect API key provided: {SECRET}"}})]
    env = _babyai_env(policy(server.url, retries=3))  # fallback_to_quick is on: it must not swallow this
    env.reset(seed=0)
    with pytest.raises(EndpointError) as err:
        env.step(1)
    msg = str(err.value)
    assert len(server.requests) == 1  # not retried
    assert not isinstance(err.value, PolicyError)  # so no caller falls back to QUICK on it
    for part in (f"HTTP {status}", f"{server.url}/chat/completions", "model 'm'", "$LONDI_TEST_KEY (now set)",
                 f"listed at {server.url}/models"):
        assert part in msg
    assert SECRET not in msg  # the server echoed the key; the message must not


def test_endpoint_down_mid_run_falls_back_warns_once_per_episode_and_counts_only_answered_calls(server, caplog):
    server.script = [(200, chat("turn left"))]  # never ends an episode
    env = _babyai_env(policy(server.url, retries=1))
    env.reset(seed=0)
    answered = [env.step(1)[4]["switch"] for _ in range(3)]
    assert all(sw["actor"] == "deepthink" and sw["usage"]["deepthink"]["calls"] == 1 for sw in answered)
    server.close()  # connection refused from now on
    with caplog.at_level(logging.INFO):
        for episode in range(2):
            steps = answered if episode == 0 else []
            while True:
                *_, term, trunc, info = env.step(1)
                steps.append(info["switch"])
                if term or trunc:
                    break
            env.reset()
            summary = steps[-1]["episode"]
            n_fallbacks = sum(sw["fallback"] for sw in steps)
            n_answered = 3 if episode == 0 else 0
            assert n_fallbacks == len(steps) - n_answered > 0 and summary["fallbacks"] == n_fallbacks
            failed = [sw["usage"]["deepthink"] for sw in steps if sw["fallback"]]
            assert all(u["calls"] == 0 and u["wall_seconds"] > 0 for u in failed)  # time recorded, no call
            assert sum(sw["usage"]["deepthink"]["calls"] for sw in steps) == n_answered  # what the runner sums
            assert summary["deepthink_model_calls"] == summary["deepthink_calls"] == n_answered
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2 and all(r.name == "londi.switch.env" for r in warnings)  # one per episode
    assert "failed" in warnings[0].getMessage() and "Connection refused" in warnings[0].getMessage()


def test_endpoint_down():
    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PolicyError, match="unreachable.*check base_url"):
        policy(f"http://127.0.0.1:{port}/v1", retries=1).act_one(STATE)


def test_key_never_leaks(server, monkeypatch, caplog):
    monkeypatch.setenv("LONDI_TEST_KEY", SECRET)
    server.script = [(503, "busy")]
    pol = policy(server.url, retries=1)
    with caplog.at_level(logging.DEBUG), pytest.raises(PolicyError) as err:
        pol.act_one(STATE)
    assert server.requests[0]["auth"] == f"Bearer {SECRET}"  # it was sent...
    for text in (repr(pol), str(err.value), caplog.text, json.dumps(vars(pol), default=str)):
        assert SECRET not in text  # ...and appears nowhere else


def test_config_errors():
    with pytest.raises(ValueError, match="endpoint"):
        openai_policy(endpoint="embeddings")
    with pytest.raises(ValueError, match="retries"):
        openai_policy(retries=-1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def transformers_serve(tmp_path_factory):
    """`transformers serve` on 127.0.0.1 serving the shipped QUICK model; yields (base_url, model name)."""
    for module in ("fastapi", "uvicorn"):
        pytest.importorskip(module, reason="needs transformers[serving]: pip install -e '.[dev]'")
    tmp = tmp_path_factory.mktemp("serve")
    model = tmp / "babyai_quick"
    shutil.copytree(Path(__file__).resolve().parents[1] / "londi/assets/models/babyai_quick", model)
    # The distilled model was never trained on chat, so it ships no chat template; the plainest one (messages
    # joined) lets /v1/chat/completions render the same text /v1/completions gets.
    (model / "chat_template.jinja").write_text("{{ messages | map(attribute='content') | join('\\n\\n') }}")
    (tmp / "hf" / "hub").mkdir(parents=True)  # /v1/models lists the HF cache and fails when there is none
    port = _free_port()
    env = {**os.environ, "HF_HOME": str(tmp / "hf"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    log = open(tmp / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "transformers.cli.transformers", "serve", str(model),
                             "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not come up:\n{(tmp / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"{base}/v1", str(model)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_real_transformers_serve(transformers_serve, endpoint):
    base_url, model = transformers_serve
    meter = ComputeMeter()
    pol = openai_policy(name="served", base_url=base_url, model=model, endpoint=endpoint, api_key_env=None,
                        retries=0, timeout=60, max_tokens=4, history=0, num_params=23_296, meter=meter)
    env = _babyai_env(pol, fallback_to_quick=False)  # any failure raises instead of letting QUICK act
    env.reset(seed=0)
    for _ in range(3):  # real BabyAI-Text states, one request each
        state = env.context().state
        *_, info = env.step(1)
        sw, result = info["switch"], env.last_results["deepthink"]
        assert sw["actor"] == "deepthink" and not sw["fallback"]
        assert state.admissible_actions[result.index] == result.action and result.info["reply"]
        assert sw["usage"]["deepthink"]["calls"] == 1 and sw["usage"]["deepthink"]["tokens"] > 0
    states = [env.context().state]
    env.reset(seed=1)
    states += [env.context().state] * 2
    results = pol.act(states)  # a batch: concurrent requests
    for s, r in zip(states, results, strict=True):
        assert s.admissible_actions[r.index] == r.action and r.info["tokens_estimated"] is False
    u = meter.totals["served"]
    assert u.calls == 6 and u.completion_tokens > 0 and u.prompt_tokens > 6 * 50  # the server's own counts
    assert u.flops == 2 * 23_296 * u.tokens
    with pytest.raises(EndpointError, match="HTTP 404"):  # a real server's 404 (wrong base_url) stops at once
        openai_policy(base_url=base_url.replace("/v1", "/v2"), model=model, endpoint=endpoint, api_key_env=None,
                      retries=3).act_one(states[0])
