#!/usr/bin/env python3
"""The benchmark LSTM in the tools users would pick instead of bptt.

The same problem as `bptt demo` and `bptt bench`: an LSTM with input 64 and
hidden 256 at batch 16 over T = 1000 steps, a linear read-out to 32 classes
with softmax cross-entropy at every step, one forward and backward pass per
iteration. Rows:

* PyTorch `nn.LSTM` (oneDNN on CPU), store-all;
* PyTorch with `torch.utils.checkpoint` over about sqrt(T) segments;
* JAX `lax.scan`, store-all (jit-compiled).

Run it beside `bptt demo` in the same session and compare ratios, never
absolute times across sessions:

    pip install torch jax
    python3 benchmarks/peers.py --threads 1
    BPTT_THREADS=1 cargo run --release -- demo --hidden 256 --input 64 --batch 16 --budget 100% --policy store-all

CI does not run this script.
"""

import argparse
import math
import os
import statistics
import sys
import time


def median_time(step, iters, warmup):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_rows(args):
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    T, B, I, H, C = args.len, args.batch, args.input, args.hidden, args.classes
    lstm = torch.nn.LSTM(I, H)
    readout = torch.nn.Linear(H, C)
    x = torch.rand(T, B, I) * 2 - 1
    y = torch.randint(0, C, (T, B))

    def loss_of(h):
        return F.cross_entropy(readout(h).reshape(T * B, C), y.reshape(T * B))

    def store_all():
        lstm.zero_grad(set_to_none=False)
        readout.zero_grad(set_to_none=False)
        out, _ = lstm(x)
        loss_of(out).backward()

    seg = max(1, round(math.sqrt(T)))

    def segment(xs, h, c):
        out, (h, c) = lstm(xs, (h, c))
        return out, h, c

    def checkpointed():
        lstm.zero_grad(set_to_none=False)
        readout.zero_grad(set_to_none=False)
        h = torch.zeros(1, B, H)
        c = torch.zeros(1, B, H)
        outs = []
        for s in range(0, T, seg):
            out, h, c = checkpoint(segment, x[s : s + seg], h, c, use_reentrant=False)
            outs.append(out)
        loss_of(torch.cat(outs)).backward()

    yield "PyTorch nn.LSTM, store-all", median_time(store_all, args.iters, args.warmup)
    yield (
        f"PyTorch, checkpoint every {seg} steps",
        median_time(checkpointed, args.iters, args.warmup),
    )


def jax_rows(args):
    os.environ.setdefault(
        "XLA_FLAGS",
        f"--xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'} "
        f"intra_op_parallelism_threads={args.threads}",
    )
    import jax
    import jax.numpy as jnp

    T, B, I, H, C = args.len, args.batch, args.input, args.hidden, args.classes
    k = jax.random.split(jax.random.PRNGKey(1), 6)
    s = 1 / math.sqrt(H)
    params = {
        "wx": jax.random.uniform(k[0], (I, 4 * H), minval=-s, maxval=s),
        "wh": jax.random.uniform(k[1], (H, 4 * H), minval=-s, maxval=s),
        "b": jnp.zeros(4 * H),
        "wo": jax.random.uniform(k[2], (H, C), minval=-s, maxval=s),
        "bo": jnp.zeros(C),
    }
    x = jax.random.uniform(k[3], (T, B, I), minval=-1, maxval=1)
    y = jax.random.randint(k[4], (T, B), 0, C)

    def loss(p):
        def cell(carry, inp):
            h, c = carry
            xt, yt = inp
            g = xt @ p["wx"] + h @ p["wh"] + p["b"]
            i, f, gg, o = jnp.split(g, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(gg)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            logits = h @ p["wo"] + p["bo"]
            lp = jax.nn.log_softmax(logits)
            return (h, c), -jnp.take_along_axis(lp, yt[:, None], axis=1).mean()

        zeros = jnp.zeros((B, H))
        _, losses = jax.lax.scan(cell, (zeros, zeros), (x, y))
        return losses.mean()

    grad = jax.jit(jax.grad(loss))

    def step():
        jax.block_until_ready(grad(params))

    yield "JAX lax.scan, store-all", median_time(step, args.iters, args.warmup)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--len", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--input", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--classes", type=int, default=32)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", choices=["torch", "jax"], default=None)
    args = ap.parse_args()
    print(
        f"LSTM input {args.input} hidden {args.hidden} batch {args.batch}, "
        f"T = {args.len}, {args.threads} thread(s); median s/iter of {args.iters}"
    )
    sources = {"torch": torch_rows, "jax": jax_rows}
    for name, rows in sources.items():
        if args.only and args.only != name:
            continue
        try:
            for label, seconds in rows(args):
                print(f"{label:<40} {seconds:8.3f}")
        except ImportError as e:
            print(f"{name}: not installed ({e})", file=sys.stderr)


if __name__ == "__main__":
    main()
