#!/usr/bin/env bash
# bptt beside PyTorch and JAX on the benchmark LSTM (input 64, hidden 256,
# batch 16, T = 1000, a 32-class softmax read-out at every step), in one run,
# at 1 and 2 threads. Needs `pip install torch jax`; CI does not run it.
#
#   bash benchmarks/side_by_side.sh [bptt binary]
set -euo pipefail
cd "$(dirname "$0")/.."
bptt=${1:-}
if [ -z "$bptt" ]; then
    cargo build --release --quiet
    bptt="${CARGO_TARGET_DIR:-target}/release/bptt"
fi
for threads in 1 2; do
    echo "== $threads thread(s)"
    python3 benchmarks/peers.py --threads "$threads" --iters 3
    BPTT_THREADS=$threads "$bptt" demo --hidden 256 --input 64 --batch 16 --iters 3 \
        --budget 5% --policy msm | tail -3
done
