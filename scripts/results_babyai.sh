#!/usr/bin/env bash
# The LONDI comparison on BabyAI-Text with the project's own commands (sweeps, then londi-report).
# Usage: scripts/results_babyai.sh [LEVEL] [SEEDS] [STEPS]   e.g. scripts/results_babyai.sh goto_local 0,1,2 20000
# Env: EVAL (eval episodes, 100), JOBS (parallel jobs, 2), COSTS (LONDI costs, 0.05,0.1,0.2),
#      BUDGETS (LONDI-B budgets, 1,2,4,8), QUICK_PATH (QUICK's model dir; default: babyai_quick_goto, the QUICK
#      these tables were made with; londi-assets:models/babyai_quick for today's default QUICK),
#      DEEPTHINK (model@deepthink: expert, the simulated reference, or distilled, the shipped LM), DEEPTHINK_PATH
#      (with DEEPTHINK=distilled: another model dir than the shipped one, e.g. a londi-distill out=.../model), N_ENVS (1),
#      LAG_TARGETS (Lagrangian targets, 2), ONLY (the groups to run, default all:
#      fixed,londi,londi_b,lagrangian,cascade,random,random_calls; the report covers whatever is in the folder),
#      RANDOM_AT_COST (random runs at the per-step DEEPTHINK rate, and random_calls at the DEEPTHINK calls per
#      episode, that LONDI at this cost ended with, 0.1),
#      TAG (run folders under multirun/results<TAG>/, report under results/babyai_<level><TAG>; default empty),
#      EXTRA (more londi-train overrides for every run, space-separated, e.g.
#      "quick.greedy=false quick.temperature=0.5 deepthink.greedy=false deepthink.temperature=0.5").
# Run folders go to multirun/results/<level>/ (not committed: checkpoints); the report's table and figures
# go to results/babyai_<level>/ (committed). ~35 min for goto_local on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
LEVEL=${1:-goto_local}
SEEDS=${2:-0,1,2}
STEPS=${3:-20000}
EVAL=${EVAL:-100}
JOBS=${JOBS:-2}
COSTS=${COSTS:-0.05,0.1,0.2}
BUDGETS=${BUDGETS:-1,2,4,8}
LAG_TARGETS=${LAG_TARGETS:-2}
RANDOM_AT_COST=${RANDOM_AT_COST:-0.1}
ONLY=${ONLY:-fixed,londi,londi_b,lagrangian,cascade,random,random_calls}
want() { [[ ",$ONLY," == *",$1,"* ]]; }
DEEPTHINK=${DEEPTHINK:-expert}
N_ENVS=${N_ENVS:-1}
TAG=${TAG:-}
ROOT=multirun/results$TAG/$LEVEL
TRAIN=".venv/bin/londi-train"
QUICK_PATH=${QUICK_PATH:-londi-assets:models/babyai_quick_goto}
COMMON=(env=babyai_text/$LEVEL seed=$SEEDS eval_episodes=$EVAL logger=disabled quick.path=$QUICK_PATH
        model@deepthink=$DEEPTHINK n_envs=$N_ENVS
        hydra/launcher=joblib hydra.launcher.n_jobs=$JOBS)
[ -n "${DEEPTHINK_PATH:-}" ] && COMMON+=(deepthink.path=$DEEPTHINK_PATH)
[ -n "${EXTRA:-}" ] && read -r -a _extra <<< "$EXTRA" && COMMON+=("${_extra[@]}")
LEARNED=(total_steps=$STEPS eval_every=$((STEPS / 4)) checkpoint_every=$STEPS)
export OMP_NUM_THREADS=1

# Fixed switchers: nothing to learn, so a short "training" phase and the same seeded final evaluation.
if want fixed; then
  $TRAIN -m "${COMMON[@]}" switcher=always_quick,always_deepthink,heuristic,oracle total_steps=200 \
      eval_every=200 checkpoint_every=200 hydra.sweep.dir=$ROOT/fixed
  if [ "$DEEPTHINK" != expert ]; then  # an imperfect DEEPTHINK: the oracle that calls it only where it is right
    $TRAIN -m "${COMMON[@]}" switcher=oracle switcher.rule=deepthink_right total_steps=200 eval_every=200 \
        checkpoint_every=200 hydra.sweep.dir=$ROOT/oracle_deepthink_right
  fi
fi
# LONDI (a few costs), LONDI-B (budgets), Lagrangian, the online-cascade router.
want londi && $TRAIN -m "${COMMON[@]}" "${LEARNED[@]}" switcher=londi switcher.cost=$COSTS hydra.sweep.dir=$ROOT/londi
want londi_b && $TRAIN -m "${COMMON[@]}" "${LEARNED[@]}" switcher=londi_b switcher.budget=$BUDGETS hydra.sweep.dir=$ROOT/londi_b
want lagrangian && $TRAIN -m "${COMMON[@]}" "${LEARNED[@]}" switcher=lagrangian switcher.target_calls=$LAG_TARGETS hydra.sweep.dir=$ROOT/lagrangian
want cascade && $TRAIN -m "${COMMON[@]}" "${LEARNED[@]}" switcher=cascade hydra.sweep.dir=$ROOT/cascade
# Random at the DEEPTHINK rate LONDI (cost RANDOM_AT_COST) ended with, read from its final evaluations:
# "random" at LONDI's per-step rate; "random_calls" at LONDI's calls per episode. A random switcher's episode
# length depends on its p, so p is searched: from "random" (which runs first), each try sets
# p <- p * (target / calls)^(1/a), a the slope of log calls against log p over the last two tries (1 at first),
# until the calls are within 5% of LONDI's (at most 5 tries, under multirun/results<TAG>/random_calls_search/,
# outside the report's folder); the last try is copied to <level>/random_calls.
final_eval() {  # prints "<DEEPTHINK calls per step> <calls per episode> <steps per episode> <random p>" of the runs in $1
.venv/bin/python - "$1" "${2:-}" <<'PY'
import sys, pathlib, pandas as pd
from omegaconf import OmegaConf
calls = steps = episodes = 0
ps = []
for ep in pathlib.Path(sys.argv[1]).rglob("episodes.csv"):
    sw = OmegaConf.load(ep.parent / "config.yaml").switcher
    if sys.argv[2] and sw.cost != float(sys.argv[2]):
        continue
    ps.append(float(sw.get("p") or "nan"))
    df = pd.read_csv(ep)
    ev = df[(df.phase == "eval") & (df.global_step == df.global_step.max())]
    calls, steps, episodes = calls + ev.deepthink_calls.sum(), steps + ev.env_steps.sum(), episodes + len(ev)
if not steps:
    sys.exit(f"no finished run{' at cost ' + sys.argv[2] if sys.argv[2] else ''} under {sys.argv[1]}"
             + (": set RANDOM_AT_COST to one of COSTS" if sys.argv[2] else ": run the random group first"))
print(calls / steps, calls / episodes, steps / episodes, ps[0])
PY
}
SHORT=(total_steps=200 eval_every=200 checkpoint_every=200)
if want random || want random_calls; then
  read -r RATE TARGET _ _ <<< "$(final_eval "$ROOT/londi" "$RANDOM_AT_COST")"
fi
if want random; then
  $TRAIN -m "${COMMON[@]}" switcher=random switcher.p=$(printf %.3f "$RATE") "${SHORT[@]}" hydra.sweep.dir=$ROOT/random
fi
if want random_calls; then
  read -r _ GOT _ P <<< "$(final_eval "$ROOT/random")"
  SEARCH=multirun/results$TAG/random_calls_search/$LEVEL
  BEST=""; PREV=""
  for TRY in 1 2 3 4 5; do
    read -r NEXT DONE <<< "$(.venv/bin/python - "$P" "$GOT" "$TARGET" $PREV <<'PY'
import math, sys
p, got, target, *prev = map(float, sys.argv[1:])
a = 1.0
if prev and prev[0] != p and prev[1] > 0 and got > 0:
    a = min(2.0, max(0.2, math.log(got / prev[1]) / math.log(p / prev[0])))
print(f"{min(1.0, max(0.001, p * (target / max(got, 1e-9)) ** (1 / a))):.3f}", int(abs(got - target) <= 0.05 * target))
PY
)"
    [ "$DONE" = 1 ] && [ -n "$BEST" ] && break
    PREV="$P $GOT"; P=$NEXT; BEST=$SEARCH/p$P
    $TRAIN -m "${COMMON[@]}" switcher=random switcher.p=$P "${SHORT[@]}" hydra.sweep.dir=$BEST
    read -r _ GOT _ _ <<< "$(final_eval "$BEST")"
    echo "random_calls: p=$P gives $GOT DEEPTHINK calls per episode (LONDI c$RANDOM_AT_COST: $TARGET)"
  done
  rm -rf "$ROOT/random_calls" && cp -r "$BEST" "$ROOT/random_calls"
fi
.venv/bin/londi-report dir=$ROOT out=results/babyai_$LEVEL$TAG
