#!/usr/bin/env bash
# How long rustc takes on a user crate with one #[bptt] cell.
#
#   macros/bench/build_time.sh [T ...]            # default: 1000 10000
#   macros/bench/build_time.sh segments [T ...]   # rustc time against segment length
#
# Creates a crate outside the workspace (in $BPTT_BENCH_DIR, default a fresh
# temporary directory) that depends on bptt-runtime and bptt-macros by path
# and holds one LSTM newtype under #[bptt(seq_len = T, budget = "5%",
# alpha = 3)]. Dependencies are built once; then, for each T and for each
# profile, only the crate itself is rebuilt and timed: that is the macro's
# expansion plus rustc on the generated code. Each T is measured twice: with
# the proc macro's planner built as cargo builds proc macros by default
# (opt-level 0, in dev and release alike), and with
# `[profile.<p>.package.bptt] opt-level = 3`, which makes expansion fast.
#
# `segments` compiles the expanded code itself (printed by the example
# `emit_segmented`, no macro involved) with the schedule in one function and
# split into segment functions of 2048, 512, 128 (the default) and 32 calls.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BPTT_BENCH_DIR:-$(mktemp -d /tmp/bptt-build-time.XXXXXX)}
MODE=macro
if [ "${1:-}" = segments ]; then MODE=segments; shift; fi
LENS=("$@")
[ ${#LENS[@]} -eq 0 ] && LENS=(1000 10000)
mkdir -p "$WORK/src"
cd "$WORK"

manifest() { # $1 = "default" or "optimised"
    cat > Cargo.toml <<TOML
[package]
name = "bptt-build-time"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
bptt-runtime = { path = "$ROOT/runtime" }
bptt-macros = { path = "$ROOT/macros" }
ndarray = "0.17"

[workspace]
TOML
    if [ "$1" = optimised ]; then
        cat >> Cargo.toml <<TOML

[profile.dev.package.bptt]
opt-level = 3

[profile.release.package.bptt]
opt-level = 3
TOML
    fi
}

source_for() { # $1 = T
    cat > src/lib.rs <<RUST
//! One LSTM newtype with a #[bptt] schedule of $1 steps.

use bptt_macros::bptt;
use bptt_runtime::{Cell, Lstm};
use ndarray::{ArrayView2, ArrayViewMut2};

/// The cell.
#[bptt(seq_len = $1, budget = "5%", alpha = 3, policy = "msm")]
pub struct MyLstm(pub Lstm);

impl Cell for MyLstm {
    fn input_size(&self) -> usize { self.0.input_size() }
    fn state_size(&self) -> usize { self.0.state_size() }
    fn tape_size(&self) -> usize { self.0.tape_size() }
    fn output_size(&self) -> usize { self.0.output_size() }
    fn scratch_size(&self) -> usize { self.0.scratch_size() }
    fn params(&self) -> &[f32] { self.0.params() }
    fn params_mut(&mut self) -> &mut [f32] { self.0.params_mut() }
    fn forward(&self, x: ArrayView2<f32>, h: ArrayView2<f32>, n: ArrayViewMut2<f32>) { self.0.forward(x, h, n) }
    fn forward_tape(&self, x: ArrayView2<f32>, h: ArrayView2<f32>, t: ArrayViewMut2<f32>, n: ArrayViewMut2<f32>) {
        self.0.forward_tape(x, h, t, n)
    }
    fn state_from_tape(&self, t: ArrayView2<f32>, h: ArrayViewMut2<f32>) { self.0.state_from_tape(t, h) }
    fn backward(&self, x: ArrayView2<f32>, t: ArrayView2<f32>, dh: ArrayView2<f32>, dp: ArrayViewMut2<f32>,
                g: &mut [f32], s: ArrayViewMut2<f32>) {
        self.0.backward(x, t, dh, dp, g, s)
    }
}
RUST
}

seconds() { # runs "$@", prints its wall time in seconds
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }'
}

echo "crate in $WORK (rustc $(rustc --version | cut -d' ' -f2))"
if [ "$MODE" = segments ]; then
    (cd "$ROOT" && cargo build -q --release -p bptt-macros --example emit_segmented)
    manifest default
    source_for 10
    cargo build -q 2>/dev/null
    cargo build -q --release 2>/dev/null
    printf "%7s %9s %9s %12s %14s\n" "T" "segment" "functions" "dev build" "release build"
    for len in "${LENS[@]}"; do
        for calls in 0 2048 512 128 32; do
            "$ROOT/target/release/examples/emit_segmented" "$len" "$calls" |
                sed 's/^pub struct MyCell;$/pub struct MyCell(pub bptt_runtime::Lstm);/' > src/lib.rs
            cat >> src/lib.rs <<RUST
use bptt_runtime::Cell;
use ndarray::{ArrayView2, ArrayViewMut2};
impl Cell for MyCell {
    fn input_size(&self) -> usize { self.0.input_size() }
    fn state_size(&self) -> usize { self.0.state_size() }
    fn tape_size(&self) -> usize { self.0.tape_size() }
    fn output_size(&self) -> usize { self.0.output_size() }
    fn scratch_size(&self) -> usize { self.0.scratch_size() }
    fn params(&self) -> &[f32] { self.0.params() }
    fn params_mut(&mut self) -> &mut [f32] { self.0.params_mut() }
    fn forward(&self, x: ArrayView2<f32>, h: ArrayView2<f32>, n: ArrayViewMut2<f32>) { self.0.forward(x, h, n) }
    fn forward_tape(&self, x: ArrayView2<f32>, h: ArrayView2<f32>, t: ArrayViewMut2<f32>, n: ArrayViewMut2<f32>) {
        self.0.forward_tape(x, h, t, n)
    }
    fn state_from_tape(&self, t: ArrayView2<f32>, h: ArrayViewMut2<f32>) { self.0.state_from_tape(t, h) }
    fn backward(&self, x: ArrayView2<f32>, t: ArrayView2<f32>, dh: ArrayView2<f32>, dp: ArrayViewMut2<f32>,
                g: &mut [f32], s: ArrayViewMut2<f32>) {
        self.0.backward(x, t, dh, dp, g, s)
    }
}
RUST
            functions=$(( $(grep -c 'fn segment_' src/lib.rs || true) ))
            cargo clean -q -p bptt-build-time
            dev=$(seconds cargo build)
            cargo clean -q -p bptt-build-time --release
            rel=$(seconds cargo build --release)
            label=$calls; [ "$calls" = 0 ] && label=unsplit
            printf "%7s %9s %9s %11ss %13ss\n" "$len" "$label" "$functions" "$dev" "$rel"
        done
    done
    exit 0
fi
printf "%-10s %7s %12s %14s\n" "planner" "T" "dev build" "release build"
for variant in default optimised; do
    manifest "$variant"
    source_for 10
    # Dependencies (bptt, cranelift, ...) once per variant, untimed.
    cargo build -q 2>/dev/null
    cargo build -q --release 2>/dev/null
    for len in "${LENS[@]}"; do
        source_for "$len"
        cargo clean -q -p bptt-build-time
        dev=$(seconds cargo build)
        cargo clean -q -p bptt-build-time --release
        rel=$(seconds cargo build --release)
        printf "%-10s %7s %11ss %13ss\n" "$variant" "$len" "$dev" "$rel"
    done
done
