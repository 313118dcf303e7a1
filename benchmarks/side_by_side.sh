#!/usr/bin/env bash
# bptt beside PyTorch and JAX on the benchmark LSTM (input 64, hidden 256,
# batch 16, T = 1000, a 32-class softmax read-out at every step), in one run,
# at 1 and 2 threads; then hidden 1024 (weights larger than L2) and batch 1
# (the latency regime). Needs `pip install torch jax`; CI does not run it.
#
#   bash benchmarks/side_by_side.sh [bptt binary] [sizes...]
#
# Sizes are `hidden:batch` (default: 256:16 1024:16 256:1).
set -euo pipefail
cd "$(dirname "$0")/.."
bptt=${1:-}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(256:16 1024:16 256:1)
if [ -z "$bptt" ]; then
    cargo build --release --quiet
    bptt="${CARGO_TARGET_DIR:-target}/release/bptt"
fi
for size in "${sizes[@]}"; do
    hidden=${size%:*}
    batch=${size#*:}
    for threads in 1 2; do
        echo "== hidden $hidden, batch $batch, $threads thread(s)"
        python3 benchmarks/peers.py --threads "$threads" --iters 3 --hidden "$hidden" --batch "$batch"
        BPTT_THREADS=$threads "$bptt" demo --hidden "$hidden" --input 64 --batch "$batch" --iters 3 \
            --budget 5% --policy msm | tail -3
    done
done
