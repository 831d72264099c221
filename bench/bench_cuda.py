"""GPU benchmark: fastctc.cuda against torch's CUDA CTC loss and an argmax greedy decoder.

Run on a machine with an NVIDIA GPU, the ``cuda`` extra and a CUDA build of torch::

    python bench/bench_cuda.py              # both loss shapes, two greedy batches
    python bench/bench_cuda.py --repeat 50

Loss: forward + backward, float32, N=32 T=500 C=29 S=100 and N=32 T=1000 C=1000 S=200.
Timed side by side in one process on the same device tensors, after a warm-up call (so
compilation is excluded), with ``torch.cuda.synchronize()`` around each call; the copies of
the small targets/lengths to the host (for validation) are included. Three fastctc entries:

* ``fastctc.torch``: the autograd function (``loss.backward()``), workspace from torch's
  caching allocator; the like-for-like comparison with ``F.ctc_loss(...).backward()``;
* ``fastctc.cuda``: ``fastctc.cuda.ctc_loss(..., return_grad=True)`` on the same memory,
  workspace from numba's allocator;
* torch is timed twice: padded int64 targets on the GPU (its native kernels) and, where its
  conditions hold (blank 0, int32 concatenated CPU targets, full input lengths, S <= 256),
  the cuDNN kernel.

Greedy: argmax, collapse of repeats, removal of blanks and the path score, ending with a list
of per-utterance token arrays on the host for both; torch's version is the usual vectorised
``max(-1)`` + shifted comparison + one copy to the host.

Prints a table with the ratio ``torch / fastctc`` (> 1: fastctc is faster). Without a GPU it
says so and exits with status 1. ``--smoke`` runs tiny shapes under numba's simulator against
torch on the CPU, to check this script itself (its timings mean nothing).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=20, help="timed calls per entry (median)")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny shapes under numba's CUDA simulator; checks the script only",
    )
    return p.parse_args()


ARGS = _parse()
if ARGS.smoke:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402

F = torch.nn.functional


def _no_gpu(reason: str) -> None:
    sys.exit(
        f"bench_cuda.py needs an NVIDIA GPU: {reason}.\n"
        'Nothing was measured. Run it on a GPU machine with `pip install "fastctc[cuda]"` '
        "and a CUDA build of torch (or `--smoke` to check the script under the simulator)."
    )


if not ARGS.smoke and not torch.cuda.is_available():
    _no_gpu("torch.cuda.is_available() is False")
try:
    import numba  # noqa: E402

    import fastctc  # noqa: E402
    import fastctc.cuda as fc  # noqa: E402
    import fastctc.torch as ft  # noqa: E402
except ImportError as exc:  # numba-cuda missing
    _no_gpu(f"{exc}")
if not fc.is_available():
    _no_gpu("numba.cuda.is_available() is False (driver or numba-cuda problem)")

DEVICE = "cpu" if ARGS.smoke else "cuda"


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _time(fn, repeat: int) -> float:
    """Median wall time in ms of ``fn()`` after one warm-up call, device synchronised."""
    fn()
    _sync()
    times = []
    for _ in range(repeat):
        _sync()
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _row(name: str, ref_ms: float, ours: dict[str, float]) -> None:
    cells = "  ".join(f"{k} {v:9.3f} ms ({ref_ms / v:5.2f}x)" for k, v in ours.items())
    print(f"{name:<36} torch {ref_ms:9.3f} ms  {cells}")


def bench_loss(N: int, T: int, C: int, S: int, repeat: int) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(T, N, C, generator=g).to(DEVICE)
    lp = logits.log_softmax(-1).detach()
    targets = torch.randint(1, C, (N, S), generator=g)
    il = torch.full((N,), T, dtype=torch.int64)
    tl = torch.randint(S // 2, S + 1, (N,), generator=g)
    tl[0] = S
    tg_dev = targets.to(DEVICE)
    tpb = 8 if ARGS.smoke else None

    def torch_native():
        x = lp.clone().requires_grad_()
        F.ctc_loss(x, tg_dev, il, tl, reduction="mean").backward()
        return x.grad

    def ours_autograd():
        x = lp.clone().requires_grad_()
        ft.ctc_loss(x, tg_dev, il, tl, reduction="mean").backward()
        return x.grad

    src = lp if DEVICE == "cuda" else lp.numpy()

    def ours_raw():
        return fc.ctc_loss(
            src,
            targets.numpy(),
            il.numpy(),
            tl.numpy(),
            reduction="mean",
            return_grad=True,
            grad_wrt="logits",
            threads_per_block=tpb,
        )

    # agreement first: losses, and fastctc's logits-convention gradient vs torch's
    loss_ref = F.ctc_loss(lp, tg_dev, il, tl, reduction="mean").item()
    t0 = time.perf_counter()
    loss_ours, grad_ours = ours_raw()
    _sync()
    print(
        f"  first fastctc.cuda call (kernel compilation or cache load): "
        f"{time.perf_counter() - t0:.2f} s"
    )
    grad_ref = torch_native()
    gdiff = float(np.abs(grad_ours.copy_to_host() - grad_ref.cpu().numpy()).max())
    print(
        f"  loss torch {loss_ref:.6f}  fastctc {float(loss_ours.copy_to_host()):.6f}  "
        f"max |grad diff| {gdiff:.2e}"
    )

    entries = {
        "fastctc.torch": _time(ours_autograd, repeat),
        "fastctc.cuda": _time(ours_raw, repeat),
    }
    ref = _time(torch_native, repeat)
    _row(f"loss f+b N={N} T={T} C={C} S={S}", ref, entries)
    if DEVICE == "cuda" and S <= 256 and torch.backends.cudnn.enabled:
        flat = torch.cat([targets[n, : tl[n]] for n in range(N)]).to(torch.int32)
        il32, tl32 = il.to(torch.int32), tl.to(torch.int32)

        def torch_cudnn():
            x = lp.clone().requires_grad_()
            F.ctc_loss(x, flat, il32, tl32, reduction="mean").backward()

        _row("  same, torch with cuDNN targets", _time(torch_cudnn, repeat), entries)


def bench_greedy(N: int, T: int, C: int, repeat: int) -> None:
    g = torch.Generator().manual_seed(1)
    lp = (torch.randn(N, T, C, generator=g) * 3).log_softmax(-1).to(DEVICE)
    lens = torch.randint(T // 2, T + 1, (N,), generator=g)
    lens[0] = T
    lens_dev = lens.to(DEVICE)
    tpb = 8 if ARGS.smoke else None

    def torch_greedy():
        vals, idx = lp.max(-1)
        valid = torch.arange(T, device=lp.device)[None, :] < lens_dev[:, None]
        prev = F.pad(idx[:, :-1], (1, 0), value=-1)
        keep = (idx != 0) & (idx != prev) & valid
        scores = (vals.double() * valid).sum(1)
        idx_h, keep_h, scores_h = idx.cpu().numpy(), keep.cpu().numpy(), scores.cpu().numpy()
        out = []
        for n in range(N):
            times = np.flatnonzero(keep_h[n])
            out.append((idx_h[n, times], times, float(scores_h[n])))
        return out

    src = lp if DEVICE == "cuda" else lp.numpy()

    def ours():
        return fc.greedy_decode(src, lens.numpy(), threads_per_block=tpb)

    a, b = ours(), torch_greedy()
    same = all(
        np.array_equal(h.tokens, r[0]) and np.array_equal(h.timesteps, r[1])
        for h, r in zip(a, b, strict=True)
    )
    print(f"  greedy outputs identical: {same}")
    ref = _time(torch_greedy, repeat)
    _row(f"greedy N={N} T={T} C={C}", ref, {"fastctc.cuda": _time(ours, repeat)})


def main() -> None:
    if ARGS.smoke:
        print(
            "SMOKE RUN under numba's CUDA simulator vs torch on the CPU: timings are meaningless."
        )
        loss_shapes = [(2, 6, 4, 2)]
        greedy_shapes = [(3, 8, 5)]
    else:
        print(f"GPU: {torch.cuda.get_device_name()}")
        loss_shapes = [(32, 500, 29, 100), (32, 1000, 1000, 200)]
        greedy_shapes = [(512, 1000, 29), (64, 1000, 1000)]
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, numba "
        f"{numba.__version__}, numba-cuda {importlib.metadata.version('numba-cuda')}, fastctc "
        f"{fastctc.__version__}; float32; median of {ARGS.repeat} after a warm-up call; "
        "ratio = torch time / fastctc time"
    )
    for shape in loss_shapes:
        bench_loss(*shape, ARGS.repeat)
    for shape in greedy_shapes:
        bench_greedy(*shape, ARGS.repeat)


if __name__ == "__main__":
    main()
