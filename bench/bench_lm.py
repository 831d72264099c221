"""Beam search with KenLM fusion: fastctc vs pyctcdecode 0.5.0 and ctc-beam-decoder, in one process.

Simulated ASR logits (../shared/data/simulate.py, 29 character labels) of the development
sentences, the 4-gram KenLM model and its vocabulary as unigrams. The decoders get the same
logits, model, unigrams, beam width, alpha and beta; their ``decode`` calls (prune_history on,
as in pyctcdecode's ``decode``) alternate in blocks of 20 utterances. Prints ms per utterance,
the speed ratios (the other decoder's time over fastctc's), hotword cost, 1 vs 2 threads and
the WER table (greedy, beam, beam + LM, beam + LM + hotwords) with how often the decoders'
top texts agree.

The decoders:

- pyctcdecode 0.5.0, pure Python (``pip install --no-deps pyctcdecode pygtrie``);
- ctc-beam-decoder, a C++ reimplementation of pyctcdecode's search with the same
  ``build_ctcdecoder`` / ``decode`` API, called through ctypes (optional: ``pip install
  ctc-beam-decoder``; without it, or with ``--no-ctc-beam-decoder``, its rows are skipped).
  It has no batch API and releases the GIL while it decodes, so its 2-thread time is its
  ``decode`` mapped over the utterances by a ``concurrent.futures.ThreadPoolExecutor(2)``,
  against fastctc's ``decode_batch(None, lps, num_threads=2)``; it runs on all ``--n``
  utterances, pyctcdecode on the first ``--ref-n``;
- fastctc's ``build_ctcdecoder``.

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
import importlib.metadata
import logging
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from _data import DATA, load_simulator

import fastctc


def load(n: int):
    simulate = load_simulator()
    sents = (DATA / "dev_sentences.txt").read_text().splitlines()[:n]
    return simulate.CHAR_LABELS, sents, [simulate.simulate_char(s, i) for i, s in enumerate(sents)]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def alternating(decoders, lps, block=20, **kw):
    """The decoders' ``decode`` over blocks of ``block`` utterances in turn, each given as
    ``(decoder, count)`` and run on the first ``count`` utterances only, so that changes in
    the machine's load hit all alike while none runs right after another has flushed its data
    out of the CPU caches; each decoder's texts and summed time."""
    texts: list[list[str]] = [[] for _ in decoders]
    times = [0.0] * len(decoders)
    for b0 in range(0, len(lps), block):
        for i, (dec, count) in enumerate(decoders):
            t0 = time.perf_counter()
            texts[i] += [dec.decode(x, **kw) for x in lps[b0 : min(b0 + block, count)]]
            times[i] += time.perf_counter() - t0
    return list(zip(texts, times, strict=True))


def _agree(texts, a, b, beam, lm, h, k):
    """How many of the first ``k`` utterances decoders ``a`` and ``b`` gave the same text."""
    ta, tb = texts[(a, beam, lm, h)][:k], texts[(b, beam, lm, h)][:k]
    return sum(x == y for x, y in zip(ta, tb, strict=True))


CBD = "ctc-beam-decoder"


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
    ap.add_argument(
        "--no-ctc-beam-decoder",
        action="store_true",
        help="leave out ctc-beam-decoder (a C++ pyctcdecode clone, pip install ctc-beam-decoder)",
    )
    ap.add_argument("--beams", type=int, nargs="+", default=[100, 64])
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--beta", type=float, default=1.5)
    ap.add_argument(
        "--model",
        default=str(DATA / "lm_4gram.arpa"),
        help="KenLM model for all decoders (ARPA or trie binary: fastctc scores "
        "from n-gram tables; a hash-table binary: through KenLM and a cache)",
    )
    args = ap.parse_args()
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    import pyctcdecode

    cbd = None
    if not args.no_ctc_beam_decoder:
        try:
            import ctc_beam_decoder as cbd
        except ImportError:
            print(f"# {CBD} is not installed (pip install {CBD}): its rows are skipped")

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
    _, t_ref = timed(lambda: pyctcdecode.build_ctcdecoder(labels, **lm_kw))
    if cbd is not None:
        try:
            _, t_cbd = timed(lambda: cbd.build_ctcdecoder(labels, **lm_kw))
        except OSError as e:  # no library for this platform
            print(f"# {CBD} cannot be used ({e}): its rows are skipped")
            cbd = None
    _, t_ours = timed(lambda: fastctc.build_ctcdecoder(labels, **lm_kw))
    cbd_ver = f", {CBD} {importlib.metadata.version(CBD)}" if cbd is not None else ""
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; numpy "
        f"{np.__version__}, pyctcdecode {getattr(pyctcdecode, '__version__', '0.5.0')}"
        f"{cbd_ver}, fastctc {fastctc.__version__}"
    )
    print(
        f"# {n} utterances ({frames / n:.0f} frames avg, 29 labels), pyctcdecode timed on "
        f"{rn}{f', {CBD} on {n}' if cbd is not None else ''}; model {Path(args.model).name}, "
        f"alpha={args.alpha}, beta={args.beta}"
    )
    print(
        f"# decoder construction with the LM: pyctcdecode {t_ref:.2f} s, "
        f"{f'{CBD} {t_cbd:.2f} s, ' if cbd is not None else ''}fastctc {t_ours:.2f} s"
    )
    print("# ratio: the other decoder's ms/utt over fastctc's (above 1: fastctc is faster)")
    print()
    head = (
        f"{'beam':>4} {'LM':>3} {'hotw':>4} | {'pyctcdecode ms/utt':>18} | "
        f"{'fastctc cold':>12} {'ratio':>6} | {'fastctc warm':>12} {'ratio':>6}"
    )
    if cbd is not None:
        head += f" | {CBD + ' ms/utt':>23} {'ratio cold':>10} {'ratio warm':>10}"
    print(head)
    texts: dict[tuple, list[str]] = {}
    cold: dict[tuple, tuple[float, float]] = {}
    cbd_ms: dict[tuple, float] = {}
    for beam in args.beams:
        for use_lm, use_hot in ((True, False), (False, False), (True, True)):
            if use_hot and beam != args.beams[0]:
                continue
            kw = lm_kw if use_lm else {}
            hw = hot if use_hot else None
            ref = pyctcdecode.build_ctcdecoder(labels, **kw)
            ref.decode(lps[0], beam_width=beam, hotwords=hw)
            runs = [(ref, rn)]
            if cbd is not None:
                other = cbd.build_ctcdecoder(labels, **kw)
                other.decode(lps[0], beam_width=beam, hotwords=hw)
                runs.append((other, n))
            # warm-up (compilation, cache loading) on a throwaway decoder, so that the timed
            # decoder's LM score cache starts empty
            fastctc.build_ctcdecoder(labels, **kw).decode_batch(
                None, lps[:2], beam_width=beam, hotwords=hw, num_threads=1
            )
            ours = fastctc.build_ctcdecoder(labels, **kw)
            (o_txt, o_cold), (r_txt, r_t), *c_run = alternating(
                [(ours, n), *runs], lps, beam_width=beam, hotwords=hw
            )
            _, o_warm = timed(
                partial(ours.decode_batch, None, lps, beam_width=beam, hotwords=hw, num_threads=1)
            )
            pr, oc, ow = 1e3 * r_t / rn, 1e3 * o_cold / n, 1e3 * o_warm / n
            row = (
                f"{beam:>4} {'on' if use_lm else 'off':>3} {len(hw or []):>4} | {pr:>18.2f} | "
                f"{oc:>12.2f} {pr / oc:>6.1f} | {ow:>12.2f} {pr / ow:>6.1f}"
            )
            if c_run:
                c_txt, c_t = c_run[0]
                cm = 1e3 * c_t / n
                row += f" | {cm:>23.2f} {cm / oc:>10.2f} {cm / ow:>10.2f}"
                texts[(CBD, beam, use_lm, use_hot)] = c_txt
                cbd_ms[(beam, use_lm, use_hot)] = cm
            print(row)
            texts[("pyctcdecode", beam, use_lm, use_hot)] = r_txt
            texts[("fastctc", beam, use_lm, use_hot)] = o_txt
            cold[(beam, use_lm, use_hot)] = (oc, ow)
    beam = args.beams[0]
    (c0, w0), (c1, w1) = cold[(beam, True, False)], cold[(beam, True, True)]
    hot_cost = ""
    if cbd is not None:
        h0, h1 = cbd_ms[(beam, True, False)], cbd_ms[(beam, True, True)]
        hot_cost = f"; {CBD} {h1:.2f} vs {h0:.2f} ({h1 / h0:.2f}x)"
    print(
        f"\n100 hotwords, beam {beam}, LM on: fastctc {c1:.2f} vs {c0:.2f} ms/utt cold "
        f"({c1 / c0:.2f}x), {w1:.2f} vs {w0:.2f} warm ({w1 / w0:.2f}x){hot_cost}"
    )

    # threads: same decoder, all utterances, 1 and 2 threads interleaved, best of 3 each;
    # ctc-beam-decoder (no batch API, the GIL released in its C++ calls): its decode in a loop
    # and mapped by a pool of 2 threads, made and warmed before timing
    dec = fastctc.build_ctcdecoder(labels, **lm_kw)
    dec.decode_batch(None, lps, beam_width=beam, num_threads=1)
    runs = {
        "fastctc 1": lambda: dec.decode_batch(None, lps, beam_width=beam, num_threads=1),
        "fastctc 2": lambda: dec.decode_batch(None, lps, beam_width=beam, num_threads=2),
    }
    if cbd is not None:
        cdec = cbd.build_ctcdecoder(labels, **lm_kw)
        pool = ThreadPoolExecutor(2)
        c_dec = partial(cdec.decode, beam_width=beam)
        runs[f"{CBD} 1"] = lambda: [c_dec(x) for x in lps]
        runs[f"{CBD} 2"] = lambda: list(pool.map(c_dec, lps))
        runs[f"{CBD} 2"]()
    best = dict.fromkeys(runs, float("inf"))
    outs = {}
    for _ in range(3):
        for name, fn in runs.items():
            outs[name], t = timed(fn)
            best[name] = min(best[name], t)
    t1, t2 = best["fastctc 1"], best["fastctc 2"]
    print(
        f"decode_batch beam {beam} LM on (best of 3): 1 thread {1e3 * t1 / n:.2f} ms/utt, "
        f"2 threads {1e3 * t2 / n:.2f} ms/utt: speed-up {t1 / t2:.2f}x "
        f"({fastctc.batch.available_cores()} cores available)"
    )
    if cbd is not None:
        pool.shutdown()
        c1, c2 = best[f"{CBD} 1"], best[f"{CBD} 2"]
        same = outs[f"{CBD} 1"] == outs[f"{CBD} 2"]
        print(
            f"{CBD} decode beam {beam} LM on (best of 3): 1 thread {1e3 * c1 / n:.2f} ms/utt, "
            f"ThreadPoolExecutor(2) {1e3 * c2 / n:.2f} ms/utt: speed-up {c1 / c2:.2f}x "
            f"(2-thread texts {'same as' if same else 'DIFFER from'} 1-thread)"
        )
        print(
            f"fastctc vs {CBD}: 1 thread {1e3 * t1 / n:.2f} vs {1e3 * c1 / n:.2f} ms/utt "
            f"(ratio {c1 / t1:.2f}), 2 threads {1e3 * t2 / n:.2f} vs {1e3 * c2 / n:.2f} ms/utt "
            f"(ratio {c2 / t2:.2f})"
        )

    # WER table on the utterances all decoders ran
    refs = sents[:rn]
    greedy_txt = []
    for x in lps[:rn]:
        h = fastctc.greedy_decode(x)
        greedy_txt.append(" ".join("".join(labels[t] for t in h.tokens.tolist()).split()))
    settings = (("beam", False, False), ("LM", True, False), ("hot", True, True))

    def agreement(a, b, k):
        return ", ".join(
            f"{name} {_agree(texts, a, b, beam, lm, h, k)}/{k}" for name, lm, h in settings
        )

    libs = ["pyctcdecode", "fastctc"] + ([CBD] if cbd is not None else [])
    lw = max(12, *map(len, libs))
    print(f"\nWER on {rn} utterances (beam {beam}, alpha {args.alpha}, beta {args.beta}):")
    print(
        f"{'decoder':>{lw}} | {'greedy':>7} | {'beam':>7} | {'beam+LM':>7} | "
        f"{'+100 hotwords':>13} | same top text as pyctcdecode"
    )
    for lib in libs:
        w = [fastctc.wer(refs, texts[(lib, beam, lm, h)][:rn]) for _, lm, h in settings]
        same = agreement(lib, "pyctcdecode", rn) if lib != "pyctcdecode" else ""
        print(
            f"{lib:>{lw}} | {100 * fastctc.wer(refs, greedy_txt):6.2f}% | {100 * w[0]:6.2f}% | "
            f"{100 * w[1]:6.2f}% | {100 * w[2]:12.2f}% | {same}"
        )
    if cbd is not None:
        print(f"{CBD}: same top text as fastctc on {n} utterances: {agreement(CBD, 'fastctc', n)}")


if __name__ == "__main__":
    main()
