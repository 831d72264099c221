"""Keras ``model.fit`` epoch time: ``fastctc.keras.CTCLoss`` vs ``keras.losses.CTC``.

Two copies of the same model (same seed, data and optimizer) are trained, one with each
loss, their epochs alternating, ``--repeat`` epochs each (best time kept); a warm-up epoch for
each comes first, so numba's compilation and Keras' first-call tracing are excluded. Keras 3
on the torch backend, CPU (``KERAS_BACKEND`` set to ``torch`` unless given). The model: per-frame
``Dense(--hidden, relu) -> Dense(V)`` logits, or with ``--gru`` a ``GRU(--hidden)`` first (the
model's share of the step grows, the loss's shrinks). Data: random features ``(N, T, F)`` and
random labels of length ``S/2..S`` padded with 0 (the blank, as ``keras.losses.CTC`` expects).

    python bench/bench_keras.py                      # N=512 T=200 V=29 S=40 batch 32
    python bench/bench_keras.py --gru --n 256

Prints both epoch times, their ratio, and the per-step loss curves' largest difference.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import fastctc  # noqa: E402
from fastctc.keras import CTCLoss  # noqa: E402


def build(args: argparse.Namespace) -> keras.Model:
    keras.utils.set_random_seed(0)
    layers = [keras.Input((args.t, args.f))]
    if args.gru:
        layers.append(keras.layers.GRU(args.hidden, return_sequences=True))
    layers += [keras.layers.Dense(args.hidden, activation="relu"), keras.layers.Dense(args.v)]
    return keras.Sequential(layers)


def epoch_times(losses: dict, x: np.ndarray, y: np.ndarray, args) -> dict[str, tuple]:
    """Best epoch time and the epoch losses of each loss, epochs of the two alternating."""
    models = {}
    for name, loss in losses.items():
        models[name] = build(args)
        models[name].compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
        models[name].fit(x, y, batch_size=args.batch, epochs=1, shuffle=False, verbose=0)
    best = dict.fromkeys(losses, np.inf)
    curves: dict[str, list] = {name: [] for name in losses}
    for _ in range(args.repeat):
        for name, model in models.items():
            t0 = time.perf_counter()
            h = model.fit(x, y, batch_size=args.batch, epochs=1, shuffle=False, verbose=0)
            best[name] = min(best[name], time.perf_counter() - t0)
            curves[name].append(float(h.history["loss"][0]))
    return {name: (best[name], curves[name]) for name in losses}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=512, help="training samples")
    p.add_argument("--t", type=int, default=200, help="frames")
    p.add_argument("--f", type=int, default=40, help="features per frame")
    p.add_argument("--v", type=int, default=29, help="classes incl. the blank")
    p.add_argument("--s", type=int, default=40, help="longest label sequence")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--gru", action="store_true", help="a GRU layer first")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, args.t, args.f)).astype(np.float32)
    y = rng.integers(1, args.v, (args.n, args.s)).astype(np.int32)
    for n, k in enumerate(rng.integers(args.s // 2, args.s + 1, args.n)):
        y[n, k:] = 0

    import torch

    print(
        f"Keras {keras.__version__} ({keras.backend.backend()} {torch.__version__}, "
        f"{torch.get_num_threads()} threads), fastctc {fastctc.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    )
    model = "GRU+Dense" if args.gru else "Dense"
    print(
        f"model {model} hidden={args.hidden}; N={args.n} T={args.t} F={args.f} V={args.v} "
        f"S<={args.s} batch={args.batch}; best of {args.repeat} epochs after a warm-up"
    )
    res = epoch_times({"fastctc": CTCLoss(), "keras": keras.losses.CTC()}, x, y, args)
    (t_fast, l_fast), (t_keras, l_keras) = res["fastctc"], res["keras"]
    print(f"keras.losses.CTC        {t_keras:8.3f} s/epoch")
    print(f"fastctc.keras.CTCLoss   {t_fast:8.3f} s/epoch")
    print(f"ratio (keras / fastctc) {t_keras / t_fast:8.2f}x")
    diff = max(abs(a - b) / abs(b) for a, b in zip(l_fast, l_keras, strict=True))
    print(f"epoch losses: largest relative difference {diff:.2e}")


if __name__ == "__main__":
    main()
