#!/bin/sh
# Usage: bench/real_scripts/run.sh SCRIPT.py  -- runs it plain, then with the hook, then
# `epochwatch report` on the hook's trace. Run from the repository root.
set -u
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-/work/main/.venv/bin/python}
out=$(mktemp -d)
export TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES= PYTHONPATH="$here/../..:$here"
echo "== plain"; PLAIN=1 nice -n 5 $py "$here/$1" 2>&1 | grep -E "TRUTH|retracing" | tail -3
echo "== hook"; EPOCHWATCH_DIR=$out EPOCHWATCH_SOCKET=$out/none.sock nice -n 5 $py "$here/$1" 2>&1 | grep -vE "^step|^epoch [0-9]|tensorflow/|cuda|oneDNN|computation_placer" | tail -25
echo "== report"; $py -m epochwatch report "$out"/*.jsonl | head -40
echo "trace: $(ls "$out"/*.jsonl)"
