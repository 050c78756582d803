#!/usr/bin/env bash
# Evaluate every run of a results sweep on its held-out split, then report it.
# Usage: scripts/results_test_split.sh LEVEL [EPISODES]   e.g. scripts/results_test_split.sh mixed_train_local
# BabyAI-Text MixedTrainLocal runs are evaluated on MixedTestLocal (objects never seen in training); other
# levels on seeds disjoint from training and periodic evaluation (see londi-evaluate). Writes eval.json in
# each run folder and the report to results/babyai_<level>_test/.
# Env: JOBS (parallel evaluations, 2), TAG (the sweep's tag in scripts/results_babyai.sh: runs under
#      multirun/results<TAG>/<level>, report to results/babyai_<level>_test<TAG>; default empty).
set -euo pipefail
cd "$(dirname "$0")/.."
LEVEL=${1:?usage: scripts/results_test_split.sh LEVEL [EPISODES]}
EPISODES=${2:-100}
TAG=${TAG:-}
ROOT=multirun/results$TAG/$LEVEL
export OMP_NUM_THREADS=1
find "$ROOT" -name episodes.csv -printf '%h\n' | sort \
    | xargs -P "${JOBS:-2}" -I{} sh -c '.venv/bin/londi-evaluate run_dir={} split=test episodes='"$EPISODES"' > {}/evaluate.log 2>&1 || { echo "failed: {}"; exit 1; }'
OUT=results/babyai_${LEVEL}_test$TAG
[ "$LEVEL" = mixed_train_local ] && OUT=results/babyai_mixed_test_local$TAG
.venv/bin/londi-report dir=$ROOT source=evaluate out=$OUT
