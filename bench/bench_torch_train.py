"""Training step time: fastctc.torch.CTCLoss vs torch.nn.CTCLoss, eager and compiled.

A small acoustic-model stand-in (two linear layers on (T, N, D) features) trained with Adam;
one step is zero_grad, forward, loss, backward and optimizer step; the compiled variants
compile the forward and the loss together (``torch.compile``: ``fullgraph=True`` for fastctc;
torch's own ``ctc_loss`` cannot be traced into the graph, Dynamo breaks it there). Compilation
and two warm-up steps are excluded; the variants are timed in interleaved rounds. CPU only.

    python bench/bench_torch_train.py [--T 200] [--N 16] [--V 29] [--steps 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numba
import torch

import fastctc.torch as ft


def make_step(loss_module, compiled, fullgraph, backend, T, N, V, D, S, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(D, 256), torch.nn.ReLU(), torch.nn.Linear(256, V))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, N, D, generator=g)
    targets = torch.randint(1, V, (N, S), generator=g)
    il = torch.randint(T // 2, T + 1, (N,), generator=g)
    tl = torch.randint(S // 2, S + 1, (N,), generator=g)

    def loss_fn(x):
        return loss_module(model(x).log_softmax(-1), targets, il, tl)

    if compiled:
        loss_fn = torch.compile(loss_fn, fullgraph=fullgraph, backend=backend)

    def step():
        opt.zero_grad()
        loss = loss_fn(x)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=int, default=200)
    p.add_argument("--N", type=int, default=16)
    p.add_argument("--V", type=int, default=29)
    p.add_argument("--D", type=int, default=80)
    p.add_argument("--S", type=int, default=40)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=None, help="torch and numba threads")
    p.add_argument("--backend", default="inductor")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
        numba.set_num_threads(a.threads)
    print(
        f"torch {torch.__version__}, numba {numba.__version__}, {platform.processor() or '?'}, "
        f"{torch.get_num_threads()} torch threads; T={a.T} N={a.N} V={a.V} D={a.D} S={a.S}, "
        f"median of {a.steps} steps, compile and warm-up excluded, backend={a.backend}"
    )
    steps = {}
    for compiled in (False, True):
        for name, loss in (("fastctc", ft.CTCLoss()), ("torch", torch.nn.CTCLoss())):
            # torch's ctc_loss has a data-dependent output shape: Dynamo breaks the graph there
            full = name == "fastctc"
            step = make_step(loss, compiled, full, a.backend, a.T, a.N, a.V, a.D, a.S)
            t0 = time.perf_counter()
            first = step()  # compiles (numba kernels too, when not cached)
            step()
            key = ("compiled" if compiled else "eager", name)
            print(
                f"{key[0]:>8} {name:>8}: first two steps {time.perf_counter() - t0:.1f} s, "
                f"first loss {first:.4f}"
            )
            steps[key] = step
    # interleaved rounds, so that load from elsewhere on the machine hits every variant alike
    ts = {key: [] for key in steps}
    for _ in range(a.steps):
        for key, step in steps.items():
            t0 = time.perf_counter()
            step()
            ts[key].append(time.perf_counter() - t0)
    times = {key: statistics.median(v) for key, v in ts.items()}
    for key, t in times.items():
        graph = "fullgraph" if key[1] == "fastctc" else "graph break at the loss"
        extra = f" ({graph})" if key[0] == "compiled" else ""
        print(f"{key[0]:>8} {key[1]:>8}: {t * 1e3:8.2f} ms/step{extra}")
    for mode in ("eager", "compiled"):
        r = times[(mode, "torch")] / times[(mode, "fastctc")]
        print(f"{mode}: nn.CTCLoss step / fastctc step = {r:.2f}")
    r = times[("eager", "fastctc")] / times[("compiled", "fastctc")]
    print(f"fastctc: eager step / compiled step = {r:.2f}")


if __name__ == "__main__":
    main()
