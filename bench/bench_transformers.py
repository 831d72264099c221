"""Hugging Face ``Wav2Vec2ProcessorWithLM.batch_decode``: fastctc vs pyctcdecode, same run.

transformers' own processor with pyctcdecode's decoder against
``fastctc.transformers.Wav2Vec2ProcessorWithLM`` with fastctc's, both built on the same
character processor (vocabulary ``<pad> | ' a-z``, as the simulator's ``CHAR_LABELS``, plus the
``<s> </s> <unk>`` the tokenizer adds) and the shared 4-gram (``lm_4gram.arpa``, unigrams
``vocab.txt``, alpha 0.5, beta 1.5, beam 100). Input: the simulated outputs of the 200
development sentences as a model's batch output, raw logits (each frame shifted by a random
amount; the three special columns low) padded with rows of -100, ``(200, T_max, 32)``.

Two ways of calling, each timed for both processors in turn (best of ``--repeat``):

* ``batch_decode(logits)``: transformers' default, a fresh fork pool of one process per core
  for pyctcdecode (its creation included); fastctc ignores pools and decodes on its threads
  (one per core);
* ``batch_decode(logits, pool=pool)`` with a user's 2-process fork pool made beforehand.

Texts, word offsets and scores are compared. Compilation is excluded (warm-up call first).

    python bench/bench_transformers.py               # 200 utterances, about a minute on 2 cores
    python bench/bench_transformers.py --n 50 --repeat 3

Needs transformers, pyctcdecode and kenlm (``pip install transformers`` and ``pip install
--no-deps pyctcdecode pygtrie``), and the shared data beside the repository
(``../shared/data``: ``simulate.py``, ``dev_sentences.txt``, ``lm_4gram.arpa``, ``vocab.txt``;
``--data DIR`` points elsewhere). Without them the script says which file is missing; the
model can be rebuilt from that folder's ``corpus_train.txt.gz`` with the recipe,
``python lm/build_lm.py corpus_train.txt.gz --order 4 --prune 0 0 1 1 --keep-arpa`` (then
``--model``), as that folder's README describes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _data import DATA

import fastctc

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def need(path: Path, what: str) -> Path:
    if not path.exists():
        sys.exit(
            f"missing {path} ({what}). This benchmark reads the shared data folder beside the "
            "repository (../shared/data: simulate.py, dev_sentences.txt, lm_4gram.arpa, "
            "vocab.txt); pass --data DIR where it lies elsewhere. lm_4gram.arpa can be rebuilt "
            "from corpus_train.txt.gz there: python lm/build_lm.py corpus_train.txt.gz --order 4 "
            "--prune 0 0 1 1 --keep-arpa (then --model)."
        )
    return path


def simulated_batch(data: Path, n: int) -> tuple[np.ndarray, int]:
    """``(n, T_max, 32)`` raw logits padded with -100, and the total number of frames."""
    spec = importlib.util.spec_from_file_location(
        "simulate", need(data / "simulate.py", "the simulator")
    )
    sim = importlib.util.module_from_spec(spec)
    sys.modules["simulate"] = sim
    spec.loader.exec_module(sim)
    assert sim.CHAR_LABELS == ["", " ", "'", *LETTERS]
    sents = need(data / "dev_sentences.txt", "the sentences").read_text().splitlines()[:n]
    rng = np.random.default_rng(0)
    utts = []
    for i, s in enumerate(sents):
        lp = sim.simulate_char(s, i)  # (T, 29) log-probabilities, CHAR_LABELS order
        x = np.pad(lp, ((0, 0), (0, 3)), constant_values=-30.0)  # <s>, </s>, <unk>
        utts.append(x + rng.normal(2.0, 3.0, size=(len(x), 1)).astype(np.float32))
    batch = np.full((len(utts), max(map(len, utts)), 32), -100.0, dtype=np.float32)
    for i, x in enumerate(utts):
        batch[i, : len(x)] = x
    return batch, sum(map(len, utts))


def processors(model: Path, unigrams: list[str], alpha: float, beta: float):
    import pyctcdecode
    import transformers

    from fastctc.transformers import Wav2Vec2ProcessorWithLM

    vocab_dir = tempfile.mkdtemp()
    vocab = {"<pad>": 0, "|": 1, "'": 2} | {c: 3 + i for i, c in enumerate(LETTERS)}
    with open(os.path.join(vocab_dir, "vocab.json"), "w") as f:
        json.dump(vocab, f)
    tok = transformers.Wav2Vec2CTCTokenizer(os.path.join(vocab_dir, "vocab.json"))
    fe = transformers.Wav2Vec2FeatureExtractor()
    ids = tok.get_vocab()
    labels = sorted(ids, key=ids.get)
    assert len(labels) == 32, labels
    lm = dict(kenlm_model_path=str(model), unigrams=unigrams, alpha=alpha, beta=beta)
    t0 = time.perf_counter()
    ref_dec = pyctcdecode.build_ctcdecoder(labels, **lm)
    t1 = time.perf_counter()
    our_dec = fastctc.build_ctcdecoder(labels, **lm)
    t2 = time.perf_counter()
    print(f"# decoder construction: pyctcdecode {t1 - t0:.2f} s, fastctc {t2 - t1:.2f} s")
    ref = transformers.Wav2Vec2ProcessorWithLM(fe, tok, ref_dec)
    ours = Wav2Vec2ProcessorWithLM(fe, tok, our_dec)
    return ref, ours


def compare(a, b) -> str:
    texts = sum(x == y for x, y in zip(a.text, b.text, strict=True))
    offsets = sum(x == y for x, y in zip(a.word_offsets, b.word_offsets, strict=True))
    diff = max(
        abs(float(x) - float(y))
        for name in ("logit_score", "lm_score")
        for x, y in zip(getattr(a, name), getattr(b, name), strict=True)
    )
    n = len(a.text)
    return f"same text {texts}/{n}, same word offsets {offsets}/{n}, max score diff {diff:.1e}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="utterances (max 200)")
    ap.add_argument("--repeat", type=int, default=1, help="timed calls per case (best kept)")
    ap.add_argument("--pool", type=int, default=2, help="processes of the user's pool")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    ap.add_argument("--model", type=Path, default=None, help="default: DATA/lm_4gram.arpa")
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--beta", type=float, default=1.5)
    args = ap.parse_args()
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    logging.getLogger("fastctc").setLevel(logging.ERROR)
    try:
        import pyctcdecode  # noqa: F401
        import transformers
    except ImportError as err:
        sys.exit(f"{err}: pip install transformers; pip install --no-deps pyctcdecode pygtrie")
    transformers.logging.set_verbosity_error()  # its deprecation notice
    model = need(args.model or args.data / "lm_4gram.arpa", "the 4-gram")
    unigrams = need(args.data / "vocab.txt", "the unigrams").read_text().split()
    if multiprocessing.get_start_method() != "fork":
        print("# warning: the start method is not fork; transformers decodes sequentially")

    batch, frames = simulated_batch(args.data, args.n)
    n = batch.shape[0]
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; Python "
        f"{platform.python_version()}, numpy {np.__version__}, transformers "
        f"{transformers.__version__}, pyctcdecode 0.5.0, fastctc {fastctc.__version__}"
    )
    print(
        f"# {n} utterances, {frames / n:.0f} frames avg, logits {tuple(batch.shape)} float32; "
        f"{model.name}, {len(unigrams)} unigrams, alpha {args.alpha}, beta {args.beta}, beam 100"
    )
    ref, ours = processors(model, unigrams, args.alpha, args.beta)
    ours.batch_decode(batch[:2])  # compile / load the kernels' disk cache, not timed

    def alternating(**kw):
        """Both processors' call, in turn ``--repeat`` times (so that changes in the
        machine's load hit both alike); outputs and best times."""
        r_t = o_t = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            r_out = ref.batch_decode(batch, output_word_offsets=True, **kw)
            t1 = time.perf_counter()
            o_out = ours.batch_decode(batch, output_word_offsets=True, **kw)
            t2 = time.perf_counter()
            r_t, o_t = min(r_t, t1 - t0), min(o_t, t2 - t1)
        return r_t, o_t, compare(o_out, r_out)

    print()
    print(f"{'batch_decode call':<34} | {'pyctcdecode s':>13} | {'fastctc s':>9} | {'ratio':>6}")
    print("-" * 72)
    rows = [("default (transformers' own pool)", *alternating())]
    # a user's fork pool, made after the processors (so that pyctcdecode's workers see the LM)
    with multiprocessing.get_context("fork").Pool(args.pool) as pool:
        ref.batch_decode(batch[: args.pool], pool=pool)  # start the workers
        rows.append((f"pool=Pool({args.pool}) (fork)", *alternating(pool=pool)))
    for name, r_t, o_t, _ in rows:
        print(f"{name:<34} | {r_t:>13.2f} | {o_t:>9.3f} | {r_t / o_t:>5.1f}x")
    print()
    for name, *_, same in rows:
        print(f"{name}: {same}")
    print(f"# fastctc: {ours.decoder.lm_scoring.name} scoring, {os.cpu_count()} threads")


if __name__ == "__main__":
    main()
