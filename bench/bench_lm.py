"""Beam search with KenLM fusion: fastctc vs pyctcdecode 0.5.0, side by side in one process.

Simulated ASR logits (../shared/data/simulate.py, 29 character labels) of the development
sentences, the 4-gram KenLM model and its vocabulary as unigrams. Both decoders get the same
logits, beam width, alpha and beta; their ``decode`` calls (prune_history on, as in
pyctcdecode's ``decode``) alternate in blocks of 20 utterances. Prints ms per utterance, the
speed ratio, hotword cost, 1 vs 2 threads and the WER table (greedy, beam, beam + LM,
beam + LM + hotwords).

    python bench/bench_lm.py                 # 200 utterances (several minutes)
    python bench/bench_lm.py --n 40          # quick: a couple of minutes
    python bench/bench_lm.py --n 40 --ref-n 20 --beams 100

With an ARPA model (the default) or a KenLM trie binary (``--model
../shared/data/lm_4gram.bin``) fastctc scores words from n-gram tables inside its kernel; with
a hash-table binary it asks KenLM through a callback and caches the scores across utterances of
a decoder. "cold" is a fresh decoder's first pass over the set, "warm" the second pass (they
differ only in that last case). Decoder construction (model loading) is timed separately.
Times are wall clock, compilation excluded (warm-up call first).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

import fastctc

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load(n: int):
    sys.path.insert(0, str(DATA))
    import simulate

    sents = (DATA / "dev_sentences.txt").read_text().splitlines()[:n]
    return simulate.CHAR_LABELS, sents, [simulate.simulate_char(s, i) for i, s in enumerate(sents)]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def alternating(ref, ours, lps, rn, block=20, **kw):
    """Both decoders' ``decode`` over blocks of ``block`` utterances in turn (pyctcdecode on
    the first ``rn`` only), so that changes in the machine's load hit both alike while neither
    runs right after the other has flushed its data out of the CPU caches; texts and summed
    times."""
    r_txt, o_txt = [], []
    r_t = o_t = 0.0
    for b0 in range(0, len(lps), block):
        t0 = time.perf_counter()
        o_txt += [ours.decode(x, **kw) for x in lps[b0 : b0 + block]]
        t1 = time.perf_counter()
        o_t += t1 - t0
        r_txt += [ref.decode(x, **kw) for x in lps[b0 : min(b0 + block, rn)]]
        r_t += time.perf_counter() - t1
    return r_txt, r_t, o_txt, o_t


def _agree(texts, beam, lm, h, rn):
    """How many of the first ``rn`` utterances both decoders gave the same text."""
    ours = texts[("fastctc", beam, lm, h)][:rn]
    return sum(a == b for a, b in zip(ours, texts[("pyctcdecode", beam, lm, h)], strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="utterances (max 200)")
    ap.add_argument(
        "--ref-n",
        type=int,
        default=None,
        help="utterances timed with pyctcdecode (default: all; its no-LM search "
        "is slow, WER columns then cover only these)",
    )
    ap.add_argument("--beams", type=int, nargs="+", default=[100, 64])
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--beta", type=float, default=1.5)
    ap.add_argument(
        "--model",
        default=str(DATA / "lm_4gram.arpa"),
        help="KenLM model for both decoders (ARPA or trie binary: fastctc scores "
        "from n-gram tables; a hash-table binary: through KenLM and a cache)",
    )
    args = ap.parse_args()
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    import pyctcdecode

    from fastctc.decoder import warmup_decoder

    warmup_decoder()  # compilation / disk-cache loading is not timed
    labels, sents, lps = load(args.n)
    n = len(lps)
    rn = min(n, args.ref_n or n)
    unigrams = (DATA / "vocab.txt").read_text().split()
    # 100 hotwords: words of the references longer than 5 letters, then vocabulary words
    hot: list[str] = []
    for w in " ".join(sents).split() + unigrams:
        if len(w) > 5 and w not in hot:
            hot.append(w)
        if len(hot) == 100:
            break
    lm_kw = dict(kenlm_model_path=args.model, unigrams=unigrams, alpha=args.alpha, beta=args.beta)
    frames = sum(x.shape[0] for x in lps)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; numpy "
        f"{np.__version__}, pyctcdecode {getattr(pyctcdecode, '__version__', '0.5.0')}, "
        f"fastctc {fastctc.__version__}"
    )
    print(
        f"# {n} utterances ({frames / n:.0f} frames avg, 29 labels), pyctcdecode timed on "
        f"{rn}; model {Path(args.model).name}, alpha={args.alpha}, beta={args.beta}"
    )
    _, t_ref = timed(lambda: pyctcdecode.build_ctcdecoder(labels, **lm_kw))
    _, t_ours = timed(lambda: fastctc.build_ctcdecoder(labels, **lm_kw))
    print(f"# decoder construction with the LM: pyctcdecode {t_ref:.2f} s, fastctc {t_ours:.2f} s")
    print()
    print(
        f"{'beam':>4} {'LM':>3} {'hotw':>4} | {'pyctcdecode ms/utt':>18} | "
        f"{'fastctc cold':>12} {'ratio':>6} | {'fastctc warm':>12} {'ratio':>6}"
    )
    texts: dict[tuple, list[str]] = {}
    cold: dict[tuple, tuple[float, float]] = {}
    for beam in args.beams:
        for use_lm, use_hot in ((True, False), (False, False), (True, True)):
            if use_hot and beam != args.beams[0]:
                continue
            kw = lm_kw if use_lm else {}
            hw = hot if use_hot else None
            ref = pyctcdecode.build_ctcdecoder(labels, **kw)
            ref.decode(lps[0], beam_width=beam, hotwords=hw)
            # warm-up (compilation, cache loading) on a throwaway decoder, so that the timed
            # decoder's LM score cache starts empty
            fastctc.build_ctcdecoder(labels, **kw).decode_batch(
                None, lps[:2], beam_width=beam, hotwords=hw, num_threads=1
            )
            ours = fastctc.build_ctcdecoder(labels, **kw)
            r_txt, r_t, o_txt, o_cold = alternating(
                ref, ours, lps, rn, beam_width=beam, hotwords=hw
            )
            _, o_warm = timed(
                partial(ours.decode_batch, None, lps, beam_width=beam, hotwords=hw, num_threads=1)
            )
            pr, oc, ow = 1e3 * r_t / rn, 1e3 * o_cold / n, 1e3 * o_warm / n
            print(
                f"{beam:>4} {'on' if use_lm else 'off':>3} {len(hw or []):>4} | {pr:>18.2f} | "
                f"{oc:>12.2f} {pr / oc:>6.1f} | {ow:>12.2f} {pr / ow:>6.1f}"
            )
            texts[("pyctcdecode", beam, use_lm, use_hot)] = r_txt
            texts[("fastctc", beam, use_lm, use_hot)] = o_txt
            cold[(beam, use_lm, use_hot)] = (oc, ow)
    beam = args.beams[0]
    (c0, w0), (c1, w1) = cold[(beam, True, False)], cold[(beam, True, True)]
    print(
        f"\n100 hotwords, beam {beam}, LM on: fastctc {c1:.2f} vs {c0:.2f} ms/utt cold "
        f"({c1 / c0:.2f}x), {w1:.2f} vs {w0:.2f} warm ({w1 / w0:.2f}x)"
    )

    # threads: same decoder, all utterances, 1 and 2 threads interleaved, best of 3 each
    dec = fastctc.build_ctcdecoder(labels, **lm_kw)
    dec.decode_batch(None, lps, beam_width=beam, num_threads=1)
    t1 = t2 = float("inf")
    for _ in range(3):
        t1 = min(t1, timed(lambda: dec.decode_batch(None, lps, beam_width=beam, num_threads=1))[1])
        t2 = min(t2, timed(lambda: dec.decode_batch(None, lps, beam_width=beam, num_threads=2))[1])
    print(
        f"decode_batch beam {beam} LM on (best of 3): 1 thread {1e3 * t1 / n:.2f} ms/utt, "
        f"2 threads {1e3 * t2 / n:.2f} ms/utt: speed-up {t1 / t2:.2f}x "
        f"({fastctc.batch.available_cores()} cores available)"
    )

    # WER table on the utterances both decoders ran
    refs = sents[:rn]
    greedy_txt = []
    for x in lps[:rn]:
        h = fastctc.greedy_decode(x)
        greedy_txt.append(" ".join("".join(labels[t] for t in h.tokens.tolist()).split()))
    print(f"\nWER on {rn} utterances (beam {beam}, alpha {args.alpha}, beta {args.beta}):")
    print(
        f"{'decoder':>12} | {'greedy':>7} | {'beam':>7} | {'beam+LM':>7} | {'+100 hotwords':>13}"
        f" | same top text as pyctcdecode"
    )
    for lib in ("pyctcdecode", "fastctc"):
        w = [
            fastctc.wer(refs, texts[(lib, beam, lm, h)][:rn])
            for lm, h in ((False, False), (True, False), (True, True))
        ]
        same = ""
        if lib == "fastctc":
            same = ", ".join(
                f"{name} {_agree(texts, beam, lm, h, rn)}/{rn}"
                for name, lm, h in (
                    ("beam", False, False),
                    ("LM", True, False),
                    ("hot", True, True),
                )
            )
        print(
            f"{lib:>12} | {100 * fastctc.wer(refs, greedy_txt):6.2f}% | {100 * w[0]:6.2f}% | "
            f"{100 * w[1]:6.2f}% | {100 * w[2]:12.2f}% | {same}"
        )


if __name__ == "__main__":
    main()
