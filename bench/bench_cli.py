"""The offline job end to end: an .npz of CTC outputs in, JSON Lines out, with the 4-gram LM.

``fastctc decode`` (run in this process through ``fastctc.cli.main``, so the interpreter's
start-up is not counted) against the same job written with pyctcdecode 0.5.0: load every
matrix, ``decode_beams``, write text and word frames as JSON Lines. Same inputs (the
simulated ASR set of ``../shared/data``: 200 held-out sentences, 29 labels), same LM (the
bundled English 4-gram), beam width, alpha and beta. Both timings cover the whole job: loading
the LM, reading, decoding, writing. fastctc is called once on two utterances before timing, so
Numba's compilation is not counted.

    python bench/bench_cli.py                  # 1 and 2 threads
    python bench/bench_cli.py --count 50 --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from _data import DATA, load_simulator

import fastctc
from fastctc import cli

ROOT = Path(__file__).resolve().parents[1]
FRAME_SHIFT = 0.02  # seconds per frame assumed for the real-time factor


def run_fastctc(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    if code != 0:
        raise RuntimeError(err.getvalue())


def run_pyctcdecode(decoder, npz_path, out_path, beam_width):
    with np.load(npz_path) as npz, open(out_path, "w", encoding="utf-8") as fh:
        for uid in npz.files:
            beams = decoder.decode_beams(npz[uid].astype(np.float32), beam_width=beam_width)
            text, _, frames, logit_score, lm_score = beams[0]
            fh.write(
                json.dumps(
                    {
                        "id": uid,
                        "text": text,
                        "score": lm_score,
                        "words": [[w, s, e] for w, (s, e) in frames],
                    }
                )
                + "\n"
            )


def texts_of(path):
    return {r["id"]: r["text"] for r in map(json.loads, Path(path).read_text().splitlines())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--beam-width", type=int, default=64)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--beta", type=float, default=1.0)
    args = ap.parse_args()
    sim = load_simulator()
    sentences = sim.load_test_sentences(str(DATA / "dev_sentences.txt"))[: args.count]
    refs = {f"u{i:03d}": s for i, s in enumerate(sentences)}
    arrays = {f"u{i:03d}": sim.simulate_char(s, i) for i, s in enumerate(sentences)}
    frames = sum(a.shape[0] for a in arrays.values())
    bundled = fastctc.data.default_lm()
    lm, unigrams = bundled.path, bundled.unigrams
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        npz = tmp / "set.npz"
        np.savez(npz, **arrays)
        (tmp / "labels.json").write_text(json.dumps(sim.CHAR_LABELS))
        np.savez(tmp / "warm.npz", **dict(list(arrays.items())[:2]))
        base = ["--labels", tmp / "labels.json", "--beam-width", args.beam_width, "--quiet"]
        lm_opts = [
            "--lm",
            lm,
            "--unigrams",
            bundled.unigrams_path,
            "--alpha",
            args.alpha,
            "--beta",
            args.beta,
        ]
        modes = {"greedy": ["--decoder", "greedy"], "beam": [], "beam+lm": lm_opts}

        print(
            f"# {platform.processor() or platform.machine()}, numpy {np.__version__}, "
            f"fastctc {fastctc.__version__}; {len(arrays)} utterances, {frames} frames "
            f"(RTF at {FRAME_SHIFT} s/frame), beam {args.beam_width}, LM {lm.name}, "
            f"alpha {args.alpha}, beta {args.beta}; file in -> JSON Lines out, "
            "LM loading included, compilation excluded"
        )
        print(
            f"{'tool':<12} {'mode':<8} {'thr':>3} | {'wall s':>7} {'utt/s':>7} "
            f"{'RTF':>7} {'WER %':>6} | {'vs pyctcdecode':>14}"
        )
        results = {}
        for mode, opts in modes.items():
            for threads in args.threads:
                run_fastctc(
                    [
                        "decode",
                        tmp / "warm.npz",
                        *base,
                        *opts,
                        "--threads",
                        threads,
                        "-o",
                        tmp / "warm.jsonl",
                    ]
                )
                out = tmp / f"{mode}_{threads}.jsonl"
                t0 = time.perf_counter()
                run_fastctc(["decode", npz, *base, *opts, "--threads", threads, "-o", out])
                results[(mode, threads)] = (time.perf_counter() - t0, texts_of(out))

        from pyctcdecode import build_ctcdecoder

        t0 = time.perf_counter()  # the whole job: load the LM, decode, write
        decoder = build_ctcdecoder(
            list(sim.CHAR_LABELS), str(lm), unigrams=unigrams, alpha=args.alpha, beta=args.beta
        )
        run_pyctcdecode(decoder, npz, tmp / "pyctc.jsonl", args.beam_width)
        t_py = time.perf_counter() - t0
        py_texts = texts_of(tmp / "pyctc.jsonl")

        def row(tool, mode, threads, wall, texts, ratio):
            ids = list(refs)
            w = 100 * fastctc.wer([refs[i] for i in ids], [texts[i] for i in ids])
            print(
                f"{tool:<12} {mode:<8} {threads:>3} | {wall:7.2f} {len(ids) / wall:7.1f} "
                f"{wall / (frames * FRAME_SHIFT):7.4f} {w:6.2f} | {ratio:>14}"
            )

        row("pyctcdecode", "beam+lm", 1, t_py, py_texts, "1.0x")
        for (mode, threads), (wall, texts) in results.items():
            ratio = f"{t_py / wall:.1f}x" if mode == "beam+lm" else ""
            row("fastctc", mode, threads, wall, texts, ratio)
        same = np.mean([py_texts[i] == results[("beam+lm", args.threads[0])][1][i] for i in refs])
        print(f"# beam+lm top text identical to pyctcdecode's on {100 * same:.1f}% of utterances")


if __name__ == "__main__":
    main()
