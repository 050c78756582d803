"""Nothing lost, nothing silently restarted: checkpoint fallback, one-line failures, and the plain command resuming."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from londi.checkpoints import CheckpointError
from londi.runner import run
from londi.switch.toy import CorridorTextEnv, NoisyExpertPolicy
from tests.helpers import expert, hashed, switcher


def _args(run_dir: Path, **kw):
    return dict(env_fn=lambda: CorridorTextEnv(length=8, max_steps=20), quick=NoisyExpertPolicy(),
                deepthink=expert("deepthink", 10**6),
                switcher=switcher("londi", "switcher.dqn.learning_starts=50", "switcher.dqn.target_update_interval=50"),
                run_dir=run_dir, encoder=hashed(32), seed=3, total_steps=300, eval_episodes=4, eval_every=100,
                log_every=20, **kw)


def _rows(path: Path):
    with path.open(newline="") as f:
        return [{k: v for k, v in r.items() if "seconds" not in k and k != "charts/SPS"} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    d = tmp_path_factory.mktemp("full")
    return run(**_args(d)), d


def test_garbage_latest_pointer_falls_back_to_the_newest_valid_checkpoint(tmp_path, full):
    run(**_args(tmp_path), stop_after_steps=200)
    (tmp_path / "checkpoints" / "latest").write_bytes(b"\x00garbage\xff")
    with pytest.warns(UserWarning, match="does not name a checkpoint"):
        res = run(**_args(tmp_path))
    assert res.resumed_from == 200 and res.final_eval == full[0].final_eval
    assert _rows(tmp_path / "metrics.csv") == _rows(full[1] / "metrics.csv")  # no duplicated rows


@pytest.mark.parametrize("victim", ["runner.json", "switcher/model.zip", "switcher/replay_buffer.pkl",
                                    "switcher/switcher.json"])
def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, full, victim):
    run(**_args(tmp_path), stop_after_steps=200)
    (tmp_path / "checkpoints" / "step_200" / victim).write_bytes(b"not what was saved")
    with pytest.warns(UserWarning, match=f"step_200.*{victim.split('/')[-1]}.*falling back"):
        res = run(**_args(tmp_path))
    assert res.resumed_from == 100 and res.final_eval == full[0].final_eval  # replayed exactly from step 100
    for f in ("metrics.csv", "episodes.csv"):
        assert _rows(tmp_path / f) == _rows(full[1] / f), f


def test_no_readable_checkpoint_is_one_clear_error_not_a_fresh_start(tmp_path):
    run(**_args(tmp_path), stop_after_steps=200)
    for step in (100, 200):
        (tmp_path / "checkpoints" / f"step_{step}" / "runner.json").write_text("{")
    size = (tmp_path / "metrics.csv").stat().st_size
    with pytest.warns(UserWarning), pytest.raises(CheckpointError, match=r"no readable checkpoint in .*delete"):
        run(**_args(tmp_path))
    assert (tmp_path / "metrics.csv").stat().st_size == size  # nothing appended to the old CSVs


def test_an_unreadable_run_json_is_an_error_not_a_new_record(tmp_path):
    run(**_args(tmp_path), stop_after_steps=200)
    (tmp_path / "run.json").write_text('{"eval_seed": 10')
    with pytest.raises(CheckpointError, match=r"run.json is not readable JSON .*restore it"):
        run(**_args(tmp_path))
    assert (tmp_path / "run.json").read_text() == '{"eval_seed": 10'


def test_only_two_checkpoints_are_kept(tmp_path):
    run(**_args(tmp_path, checkpoint_every=50), stop_after_steps=250)
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*")) == ["step_200", "step_250"]


def _train(cwd: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen(
        [sys.executable, "-m", "londi.train", "model@quick=random", "model@deepthink=expert", "total_steps=4000",
         "checkpoint_every=100", "eval_every=4000", "eval_episodes=2", "logger.progress.mode=off", *extra],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_plain_command_resumes_after_kill_9_into_the_same_folder_and_wandb_run(tmp_path):
    proc = _train(tmp_path)
    deadline = time.time() + 180
    pointers: list[Path] = []
    while time.time() < deadline and not pointers:  # `latest` is written once a checkpoint is complete
        pointers = list(tmp_path.glob("outputs/*/*/*/*/checkpoints/latest"))
        time.sleep(0.2)
    assert pointers, "no checkpoint within 3 minutes"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = pointers[0].parents[1]
    again = _train(tmp_path)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, f"stdout: {out[-1500:]}\nstderr: {err[-3000:]}"
    assert "londi: resumed from step" in out and f"run folder {run_dir}" in out
    assert len(list(tmp_path.glob("outputs/*/*/*/*"))) == 1  # the same folder, no second one
    info = json.loads((run_dir / "run_info.json").read_text())
    assert len(info["starts"]) == 2  # every start is recorded
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and {p.name.rsplit("-", 1)[-1] for p in runs} == {info["wandb_id"]}  # one W&B run, resumed
    status = json.loads((run_dir / "run.json").read_text())
    assert status["status"] == "finished" and status["resumes"][0]["step"] >= 100


def test_other_weights_under_the_same_model_path_are_refused_on_resume_and_evaluate(tmp_path):
    """A shipped asset replaced by a newer one keeps its path (and config): the run's recorded weights
    fingerprint must catch it instead of resuming or re-evaluating with the new model."""
    import shutil

    assets = Path(__file__).resolve().parents[1] / "londi" / "assets" / "models"
    model = tmp_path / "quick_model"
    shutil.copytree(assets / "babyai_quick_goto", model)
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "londi.train", f"quick.path={model}", "model@deepthink=expert", "total_steps=100",
           "checkpoint_every=100", "eval_every=100", "eval_episodes=1", "logger=disabled"]
    first = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    run_dir = next(tmp_path.glob("outputs/**/run_info.json")).parent
    assert json.loads((run_dir / "run_info.json").read_text())["models"]["quick"]
    shutil.rmtree(model)
    shutil.copytree(assets / "babyai_quick", model)  # other weights, same path
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "other QUICK weights" in again.stderr
    assert "Traceback" not in again.stderr
    ev = subprocess.run([sys.executable, "-m", "londi.evaluate", f"run_dir={run_dir}", "episodes=1"], cwd=tmp_path,
                        env=env, capture_output=True, text=True, timeout=300)
    assert ev.returncode != 0 and "other QUICK weights" in ev.stderr and "Traceback" not in ev.stderr
