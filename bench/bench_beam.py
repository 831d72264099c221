"""Prefix beam search without LM: fastctc vs fast-ctc-decode vs pyctcdecode, side by side.

Inputs: the simulated ASR set of ``../shared/data`` (dev sentences, 29 character labels) and
its ``SubwordVocab.build(5000)`` variant. For each beam width, every tool decodes the same
utterances one at a time in this process (one warm-up call first); the script prints
ms/utterance, the speed ratios and the corpus CER of each tool, then fastctc's batch
throughput on 2 threads vs 1.

Beside them, on the same matrices and with the same ``beam_width``, ``token_min_logp`` and
``beam_prune_logp`` as pyctcdecode, fastctc's pyctcdecode-compatible decoder without a language
model (``fastctc.build_ctcdecoder(labels)``) is timed twice: a loop of ``decode`` calls and one
``decode_batch(None, mats, ..., num_threads=1)`` call. A second table per set prints its
ms/utterance next to ``fastctc.beam_search``'s, pyctcdecode's time divided by each, and how
many of its top texts equal pyctcdecode's (all should: the decoder reproduces pyctcdecode).
This runs for every set (characters, subwords, OCR) and adds a few seconds to the default run;
with ``--no-pyctcdecode`` only its times are printed.

Pruning is matched: all tools use ``token_min_logp`` (fast-ctc-decode: ``beam_cut_threshold =
exp(token_min_logp)``; it requires a threshold below ``1/C``, so at C = 5000 it gets ``0.99/C``,
a looser cut than the others') and pyctcdecode's default ``beam_prune_logp = -10``.
Compile time is excluded (warm-up), all inputs are in memory.

Run from the repository root::

    python bench/bench_beam.py                      # default sizes, a few minutes
    python bench/bench_beam.py --n-char 40 --n-subword 10 --beams 16 64
    python bench/bench_beam.py --ocr 30                # + real OCR outputs (C = 6625)
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import numpy as np
from _data import DATA, load_simulator

import fastctc


def timed(fn, items, repeat=1):
    fn(items[0])  # warm-up (compilation, caches)
    best = math.inf
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = [fn(x) for x in items]
        best = min(best, time.perf_counter() - t0)
    return best / len(items) * 1e3, out


def timed_batch(fn, items, repeat=1):
    """Like ``timed`` for a function that takes the whole list at once."""
    fn(items[:1])  # warm-up (compilation, caches)
    best = math.inf
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(items)
        best = min(best, time.perf_counter() - t0)
    return best / len(items) * 1e3, out


def norm(text):
    return " ".join(text.split())


def run_set(name, mats, sents, labels, detok, beams, tmin, prune, repeat, skip_pyctc):
    import fast_ctc_decode
    from pyctcdecode import build_ctcdecoder

    sents = [norm(x) for x in sents]
    C = len(labels)
    # fast-ctc-decode requires beam_cut_threshold < 1/C
    cut = min(math.exp(tmin), 0.99 / C)
    T = np.array([m.shape[0] for m in mats])
    print(
        f"\n== {name}: {len(mats)} utterances, C = {C}, T mean {T.mean():.0f} "
        f"[{T.min()}, {T.max()}], token_min_logp = {tmin:.3f} "
        f"(fast-ctc-decode: beam_cut_threshold = {cut:.3g} = exp({math.log(cut):.3f})), "
        f"beam_prune_logp = {prune}"
    )
    probs = [np.ascontiguousarray(np.exp(m)) for m in mats]
    fcd_alphabet = ["N"] + list(labels[1:])
    greedy = [norm(detok(fastctc.greedy_decode(m).tokens)) for m in mats]
    print(f"greedy CER {fastctc.cer(sents, greedy):.4f}")
    decoder = None if skip_pyctc else build_ctcdecoder(list(labels))
    fdec = fastctc.build_ctcdecoder(list(labels))
    n = len(mats)
    dec_rows = []
    header = (
        f"{'beam':>5} {'fastctc ms':>11} {'fcd ms':>9} {'pyctc ms':>9} "
        f"{'fcd/fastctc':>12} {'pyctc/fastctc':>14} {'CER fastctc':>12} "
        f"{'CER fcd':>8} {'CER pyctc':>10}"
    )
    print(header)
    rows = []
    for K in beams:
        ms_f, out_f = timed(
            lambda m, K=K: (
                fastctc.beam_search(m, beam_width=K, beam_prune_logp=prune, token_min_logp=tmin)[
                    0
                ].tokens
            ),
            mats,
            repeat,
        )
        ms_c, out_c = timed(  # at C = 5000 it is slow: one timing run is plenty
            lambda p, K=K: fast_ctc_decode.beam_search(p, fcd_alphabet, K, cut)[0],
            probs,
            repeat if C < 1000 else 1,
        )
        hyp_f = [norm(detok(t)) for t in out_f]
        hyp_c = [norm(s.replace("\u2581", " ")) for s in out_c]
        cer_f = fastctc.cer(sents, hyp_f)
        cer_c = fastctc.cer(sents, hyp_c)
        if decoder is not None:
            ms_p, out_p = timed(
                lambda m, K=K: decoder.decode(
                    m, beam_width=K, beam_prune_logp=prune, token_min_logp=tmin
                ),
                mats,
                1,
            )
            cer_p = fastctc.cer(sents, [norm(s) for s in out_p])
            pyc = (f"{ms_p:9.3f}", f"{ms_p / ms_f:14.1f}", f"{cer_p:10.4f}")
        else:
            ms_p = out_p = None
            pyc = (f"{'-':>9}", f"{'-':>14}", f"{'-':>10}")
        # fastctc's pyctcdecode-compatible decoder (no LM), same inputs and settings
        ms_d, out_d = timed(
            lambda m, K=K: fdec.decode(m, beam_width=K, beam_prune_logp=prune, token_min_logp=tmin),
            mats,
            repeat,
        )
        ms_b, out_b = timed_batch(
            lambda ms, K=K: fdec.decode_batch(
                None,
                ms,
                beam_width=K,
                beam_prune_logp=prune,
                token_min_logp=tmin,
                num_threads=1,
            ),
            mats,
            repeat,
        )
        dec_rows.append((K, ms_f, ms_d, ms_b, ms_p, out_p, out_d, out_b))
        print(
            f"{K:5d} {ms_f:11.3f} {ms_c:9.3f} {pyc[0]} {ms_c / ms_f:12.2f} {pyc[1]} "
            f"{cer_f:12.4f} {cer_c:8.4f} {pyc[2]}"
        )
        rows.append((K, ms_f, ms_c))
    print(
        "fastctc.build_ctcdecoder(labels), no LM: decode (loop) and decode_batch "
        "(num_threads=1); same text = top texts equal to pyctcdecode's"
    )
    print(
        f"{'beam':>5} {'search ms':>10} {'decode ms':>10} {'batch ms':>9} {'pyctc ms':>9} "
        f"{'pyctc/search':>13} {'pyctc/decode':>13} {'pyctc/batch':>12} "
        f"{'same text decode':>17} {'same text batch':>16}"
    )
    for K, ms_f, ms_d, ms_b, ms_p, out_p, out_d, out_b in dec_rows:
        if out_p is not None:
            same_d = sum(a == b for a, b in zip(out_p, out_d, strict=True))
            same_b = sum(a == b for a, b in zip(out_p, out_b, strict=True))
            pyc = (
                f"{ms_p:9.3f}",
                f"{ms_p / ms_f:13.1f}",
                f"{ms_p / ms_d:13.1f}",
                f"{ms_p / ms_b:12.1f}",
                f"{f'{same_d}/{n}':>17}",
                f"{f'{same_b}/{n}':>16}",
            )
        else:
            pyc = tuple(f"{'-':>{w}}" for w in (9, 13, 13, 12, 17, 16))
        print(f"{K:5d} {ms_f:10.3f} {ms_d:10.3f} {ms_b:9.3f} " + " ".join(pyc))
    return rows


def thread_scaling(name, mats, K, tmin, prune, repeat):
    T = max(m.shape[0] for m in mats)
    C = mats[0].shape[1]
    batch = np.zeros((len(mats), T, C), dtype=np.float32)
    lens = np.array([m.shape[0] for m in mats])
    for i, m in enumerate(mats):
        batch[i, : m.shape[0]] = m
    res = {}
    for nt in (1, 2):
        fastctc.beam_search_batch(
            batch[:2],
            lens[:2],
            beam_width=K,
            beam_prune_logp=prune,
            token_min_logp=tmin,
            num_threads=nt,
        )
        best = math.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            fastctc.beam_search_batch(
                batch,
                lens,
                beam_width=K,
                beam_prune_logp=prune,
                token_min_logp=tmin,
                num_threads=nt,
            )
            best = min(best, time.perf_counter() - t0)
        res[nt] = len(mats) / best
    print(
        f"{name} batch, beam {K}: 1 thread {res[1]:.0f} utt/s, 2 threads {res[2]:.0f} utt/s, "
        f"speed-up {res[2] / res[1]:.2f}x"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-char", type=int, default=100, help="char utterances (max 200)")
    ap.add_argument("--n-subword", type=int, default=25, help="C=5000 utterances (max 200)")
    ap.add_argument("--beams", type=int, nargs="+", default=[16, 64, 128])
    ap.add_argument("--token-min-logp", type=float, default=-5.0)
    ap.add_argument("--beam-prune-logp", type=float, default=-10.0)
    ap.add_argument(
        "--repeat", type=int, default=3, help="timing repeats, best kept (slow competitors: 1)"
    )
    ap.add_argument("--no-pyctcdecode", action="store_true", help="skip pyctcdecode")
    ap.add_argument(
        "--ocr",
        type=int,
        default=0,
        metavar="N",
        help="also decode the first N real OCR outputs (ocr_dev.npz, C = 6625)",
    )
    args = ap.parse_args()

    import fast_ctc_decode  # noqa: F401
    import numba

    try:
        from importlib.metadata import version

        versions = ", ".join(
            f"{p} {version(p)}" for p in ("fast-ctc-decode", "pyctcdecode", "numba", "numpy")
        )
    except Exception:  # pragma: no cover - metadata missing
        versions = f"numba {numba.__version__}"
    print(
        f"fastctc {fastctc.__version__}, {versions}; {platform.processor() or platform.machine()}"
        f", {os.cpu_count()} CPUs; single-thread per-utterance calls, compile excluded"
    )

    sim = load_simulator()
    sents_all = sim.load_test_sentences()
    mats = sub_mats = []
    if args.n_char > 0:
        sents = sents_all[: args.n_char]
        mats = sim.char_dataset(sents)
        labels = sim.CHAR_LABELS
        run_set(
            "characters",
            mats,
            sents,
            labels,
            lambda ids: "".join(labels[i] for i in ids),
            args.beams,
            args.token_min_logp,
            args.beam_prune_logp,
            args.repeat,
            args.no_pyctcdecode,
        )
    if args.n_subword > 0:
        vocab = sim.SubwordVocab.build(5000)
        sub_sents = sents_all[: args.n_subword]
        sub_mats = sim.subword_dataset(sub_sents, vocab)
        run_set(
            "subwords",
            sub_mats,
            sub_sents,
            vocab.labels,
            vocab.detokenize,
            args.beams,
            args.token_min_logp,
            args.beam_prune_logp,
            args.repeat,
            args.no_pyctcdecode,
        )

    if args.ocr:
        import json

        meta = json.loads((DATA / "ocr_dev.json").read_text())
        ocr_labels = [""] + meta["labels"]["list"][1:]
        samples = meta["samples"][: args.ocr]
        with np.load(DATA / "ocr_dev.npz") as npz:  # probs_<i>: the i-th entry of "samples"
            ocr_mats = [
                np.log(np.maximum(npz[f"probs_{i}"].astype(np.float32), 1e-12))
                for i in range(len(samples))
            ]
        run_set(
            "real OCR (PP-OCRv4)",
            ocr_mats,
            [s["text"] for s in samples],
            ocr_labels,
            lambda ids: "".join(ocr_labels[i] for i in ids),
            args.beams,
            args.token_min_logp,
            args.beam_prune_logp,
            args.repeat,
            args.no_pyctcdecode,
        )

    print()
    if mats:
        thread_scaling(
            "characters", mats, 64, args.token_min_logp, args.beam_prune_logp, args.repeat
        )
    if sub_mats:
        # the timed subword set is kept small for fast-ctc-decode's sake; a batch of a few
        # utterances cannot keep two threads busy, so the thread test takes at least 100
        if len(sub_mats) < 100:
            sub_mats = sim.subword_dataset(sents_all[:100], vocab)
        thread_scaling(
            f"subwords ({len(sub_mats)} utt)",
            sub_mats,
            64,
            args.token_min_logp,
            args.beam_prune_logp,
            args.repeat,
        )


if __name__ == "__main__":
    main()
