#!/usr/bin/env bash
# The ScienceWorld slice of the LONDI comparison, with the project's own commands.
# Per task: QUICK = a small causal LM distilled on that task's gold paths (londi-distill, a few CPU-minutes,
# deliberately mediocre; prompts up to 448 tokens of its 512 positions: one ScienceWorld observation can pass the
# preset's 256, and a prompt that does not fit is an error, not cut); DEEPTHINK = the gold-path expert (walks back to the path after QUICK leaves it;
# charged as a simulated 780M-parameter model). LONDI against always_quick, always_deepthink and the oracle.
# Score instead of success: env.normalize_reward=true (the default) makes an episode's return its final
# score / 100; success is score 100.
# Usage: scripts/results_scienceworld.sh [TASKS] [SEEDS] [STEPS]
#        e.g. scripts/results_scienceworld.sh find_living_thing,use_thermometer,test_conductivity 0,1,2 4000
# Env: EVAL (eval episodes, 50), JOBS (parallel jobs, 2), COSTS (LONDI costs, 0.01), LIMIT (step limit, 50),
#      BUDGETS (LONDI-B budgets, e.g. 5,10; default none: LONDI-B is not run), ONLY (the groups to run, default
#      all: fixed,londi,londi_b; the report covers whatever is in the folder), FIXED (the fixed switchers of the
#      fixed group, default always_quick,always_deepthink,oracle), EXTRA (more overrides for the learned runs, e.g.
#      "switcher.budget_range=[0,15]" so LONDI-B trains on the budgets it is evaluated at), N_ENVS (envs per run, each in its
#      own worker process and JVM, 1: on a 2-core machine two jobs of one env use the cores better), TAG (run folders under
#      multirun/results<TAG>/, reports under results/scienceworld_<task><TAG>; default empty).
# Models go to outputs/distill/, run folders to multirun/results<TAG>/scienceworld_<task>/ (not committed), each
# task's report to results/scienceworld_<task><TAG>/.
set -euo pipefail
cd "$(dirname "$0")/.."
TASKS=${1:-find_living_thing,use_thermometer,test_conductivity}
SEEDS=${2:-0,1,2}
STEPS=${3:-4000}
EVAL=${EVAL:-50}
JOBS=${JOBS:-2}
COSTS=${COSTS:-0.01}
LIMIT=${LIMIT:-50}
BUDGETS=${BUDGETS:-}
ONLY=${ONLY:-fixed,londi,londi_b}
FIXED=${FIXED:-always_quick,always_deepthink,oracle}
EXTRA=${EXTRA:-}
TAG=${TAG:-}
N_ENVS=${N_ENVS:-1}
want() { [[ ",$ONLY," == *",$1,"* ]]; }
TRAIN=".venv/bin/londi-train"
export OMP_NUM_THREADS=1
for T in ${TASKS//,/ }; do
    TASK=$(sed -n 's/^task: *//p' "configs/env/scienceworld/$T.yaml")
    Q=outputs/distill/scienceworld_quick-$T
    [ -f "$Q/model/model.safetensors" ] || .venv/bin/londi-distill distill_model=quick envs=ScienceWorld-v0 \
        eval_envs=null +env_kwargs.task="$TASK" +env_kwargs.variation=null +env_kwargs.step_limit="$LIMIT" \
        episodes=60 steps=600 eval_episodes=20 eval_episodes_round=0 eval_every=0 max_prompt_tokens=448 \
        progress=false out="$Q"
    ROOT=multirun/results$TAG/scienceworld_$T
    COMMON=(env=scienceworld/$T env.step_limit=$LIMIT model@quick=hf quick.path="$PWD/$Q/model" quick.device=cpu seed=$SEEDS n_envs=$N_ENVS
            eval_episodes=$EVAL logger=disabled hydra/launcher=joblib hydra.launcher.n_jobs=$JOBS)
    LEARNED=(total_steps=$STEPS eval_every=$((STEPS / 2)) checkpoint_every=$STEPS $EXTRA)
    want fixed && $TRAIN -m "${COMMON[@]}" switcher=$FIXED total_steps=200 \
        eval_every=200 checkpoint_every=200 hydra.sweep.dir=$ROOT/fixed
    want londi && $TRAIN -m "${COMMON[@]}" "${LEARNED[@]}" switcher=londi switcher.cost=$COSTS hydra.sweep.dir=$ROOT/londi
    [ -n "$BUDGETS" ] && want londi_b && $TRAIN -m "${COMMON[@]}" "${LEARNED[@]}" switcher=londi_b \
        switcher.budget=$BUDGETS hydra.sweep.dir=$ROOT/londi_b
    .venv/bin/londi-report dir=$ROOT out=results/scienceworld_$T$TAG metric=return
done
