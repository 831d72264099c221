"""CTC loss forward+backward: fastctc vs torch.nn.functional.ctc_loss on the CPU.

Both run in this process on the same inputs at the same thread count; the table gives the
best time of each over ``--repeat`` calls and the ratio torch / fastctc (higher is better for
fastctc). Each call's result is dropped before the next, as in a training loop, so fastctc
reuses the gradient's memory from the previous call (torch allocates afresh);
``--keep-results`` keeps them all, so every call pays for fresh memory.

    python bench/bench_loss.py                # both shapes, 1 and 2 threads
    python bench/bench_loss.py --repeat 5 --threads 1
    python bench/bench_loss.py --keep-results   # no memory reuse between calls
    python bench/bench_loss.py --loss-only      # the loss alone (validation): no gradient

With ``--loss-only`` both compute the loss without its gradient: torch's forward under
``torch.no_grad()`` and fastctc's ``ctc_loss(..., return_grad=False)``.
"""

from __future__ import annotations

import argparse
import platform
import time
from functools import partial

import numpy as np
import torch

import fastctc

SHAPES = [  # N, T, V, S, logit scale
    (32, 500, 29, 100, 2.0),
    (32, 1000, 1000, 200, 2.0),
    # long and confident: per-frame log-probabilities of a well-trained model (the non-best
    # classes tens of nats down), where states drift thousands of nats apart
    (8, 2000, 29, 400, 12.0),
]


def make_inputs(N, T, V, S, scale=2.0, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((T, N, V)).astype(np.float32) * np.float32(scale)
    targets = rng.integers(1, V, size=(N, S))
    input_lengths = rng.integers(int(T * 0.8), T + 1, size=N)
    input_lengths[0] = T
    target_lengths = rng.integers(int(S * 0.8), S + 1, size=N)
    return logits, targets, input_lengths, target_lengths


def run_torch(lp, targets, il, tl):
    """torch's loss ("mean") and its gradient with respect to ``lp``."""
    lp = lp.detach().requires_grad_(True)
    loss = torch.nn.functional.ctc_loss(lp, targets, il, tl)
    loss.backward()
    return lp.grad


def run_torch_loss(lp, targets, il, tl):
    """torch's loss ("mean") alone, as in a validation loop."""
    with torch.no_grad():
        return torch.nn.functional.ctc_loss(lp, targets, il, tl)


def run_ours_loss(lp, targets, il, tl, threads):
    """fastctc's loss ("mean") alone."""
    return fastctc.ctc_loss(lp, targets, il, tl, num_threads=threads)


def run_ours(lp, targets, il, tl, mode, threads):
    """fastctc's loss ("mean") and gradient in the convention ``mode``."""
    return fastctc.ctc_loss(
        lp, targets, il, tl, return_grad=True, grad_wrt=mode, num_threads=threads
    )


def best_times(fns, repeat, keep=False):
    """Best-of-``repeat`` time of each function, one function at a time after a warm-up call.

    With ``keep`` every result stays alive until the block ends, so no call can reuse the
    memory of an earlier one.

    Calls are not interleaved: right after torch returns, its intra-op worker threads keep
    spinning for a while and would steal a core from whatever runs next, so each block starts
    after a short pause.
    """
    best = []
    for fn in fns:
        fn()  # compilation, allocator
        time.sleep(0.3)
        b = float("inf")
        kept = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            out = fn()
            b = min(b, time.perf_counter() - t0)
            if keep:
                kept.append(out)
        del kept
        best.append(b)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument(
        "--keep-results",
        action="store_true",
        help="keep every result alive while timing: no memory reuse between calls",
    )
    ap.add_argument(
        "--loss-only",
        action="store_true",
        help="time the loss without its gradient (torch under no_grad) instead",
    )
    args = ap.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, numpy {np.__version__}, "
        f"torch {torch.__version__}, fastctc {fastctc.__version__}; float32, "
        f"{'loss only' if args.loss_only else 'forward+backward'}, times exclude compilation"
    )
    if args.loss_only:
        loss_only(args)
        return
    print(
        f"{'N':>3} {'T':>5} {'V':>5} {'S':>4} {'scale':>5} {'thr':>3} | {'torch ms':>9} | "
        f"{'fastctc ms':>10} {'ratio':>6} | {'fastctc logits ms':>17} {'ratio':>6} | "
        f"{'max rel diff':>12}"
    )
    for N, T, V, S, scale in SHAPES:
        logits, targets, il, tl = make_inputs(N, T, V, S, scale)
        lp_np = fastctc.log_softmax(logits)
        # exactness on the same inputs: per-sequence losses against torch in float64
        ref = torch.nn.functional.ctc_loss(
            torch.tensor(lp_np, dtype=torch.float64),
            torch.tensor(targets),
            torch.tensor(il),
            torch.tensor(tl),
            reduction="none",
        ).numpy()
        ours = fastctc.ctc_loss(lp_np.astype(np.float64), targets, il, tl, reduction="none")
        rel = float(np.max(np.abs(ours - ref) / ref))
        for threads in args.threads:
            torch.set_num_threads(threads)
            tensors = [torch.tensor(x) for x in (lp_np, targets, il, tl)]
            inputs = (lp_np, targets, il, tl)
            t_torch, t_ours, t_ours_l = best_times(
                [
                    partial(run_torch, *tensors),
                    partial(run_ours, *inputs, "log_probs", threads),
                    partial(run_ours, *inputs, "logits", threads),
                ],
                args.repeat,
                args.keep_results,
            )
            print(
                f"{N:>3} {T:>5} {V:>5} {S:>4} {scale:>5g} {threads:>3} | {t_torch * 1e3:9.1f} | "
                f"{t_ours * 1e3:10.1f} {t_torch / t_ours:5.1f}x | "
                f"{t_ours_l * 1e3:17.1f} {t_torch / t_ours_l:5.1f}x | {rel:12.1e}"
            )


def loss_only(args):
    """The loss without its gradient, both tools, each shape and thread count."""
    head = f"{'N':>3} {'T':>5} {'V':>5} {'S':>4} {'scale':>5} {'thr':>3} | {'torch ms':>9} | "
    print(f"{head}{'fastctc ms':>10} {'ratio':>6} | same loss (rel 1e-5)")
    for N, T, V, S, scale in SHAPES:
        logits, targets, il, tl = make_inputs(N, T, V, S, scale)
        lp_np = fastctc.log_softmax(logits)
        inputs = (lp_np, targets, il, tl)
        tensors = [torch.tensor(x) for x in inputs]
        for threads in args.threads:
            torch.set_num_threads(threads)
            t_torch, t_ours = best_times(
                [partial(run_torch_loss, *tensors), partial(run_ours_loss, *inputs, threads)],
                args.repeat,
                args.keep_results,
            )
            same = np.isclose(run_ours_loss(*inputs, threads), run_torch_loss(*tensors), rtol=1e-5)
            print(
                f"{N:>3} {T:>5} {V:>5} {S:>4} {scale:>5g} {threads:>3} | {t_torch * 1e3:9.1f} | "
                f"{t_ours * 1e3:10.1f} {t_torch / t_ours:5.1f}x | {bool(same)}"
            )


if __name__ == "__main__":
    main()
