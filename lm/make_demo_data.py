#!/usr/bin/env python3
"""Write the example utterances bundled with fastctc (``fastctc/data/demo.npz`` and ``.json``).

The utterances are the simulated character-CTC outputs of ``simulate.py`` (shipped with the
project's test data, ``../shared/data`` beside the repository) for the first ``--count``
sentences of ``dev_sentences.txt``. Those sentences are held out from the text the bundled
language model is trained on, so the demo's word error rates are honest. Each matrix is stored
as float16 log-probabilities (rows renormalised after rounding), keyed ``dev000``, ``dev001``...

    python lm/make_demo_data.py --data ../shared/data --count 24 --out fastctc/data
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np


def _load_simulator(data: Path):
    spec = importlib.util.spec_from_file_location("simulate", data / "simulate.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["simulate"] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = Path(__file__).resolve().parent
    p.add_argument("--data", default=str(here.parent.parent / "shared" / "data"))
    p.add_argument("--count", type=int, default=24)
    p.add_argument("--out", default=str(here.parent / "fastctc" / "data"))
    args = p.parse_args(argv)
    data = Path(args.data)
    sim = _load_simulator(data)
    sentences = sim.load_test_sentences(str(data / "dev_sentences.txt"))[: args.count]
    arrays = {}
    transcripts = {}
    for i, sentence in enumerate(sentences):
        uid = f"dev{i:03d}"
        lp = sim.simulate_char(sentence, i).astype(np.float64)
        lp16 = lp.astype(np.float16).astype(np.float64)
        # renormalise after rounding so every row is a proper log-distribution again
        lp16 -= np.log(np.exp(lp16).sum(axis=1, keepdims=True))
        arrays[uid] = lp16.astype(np.float16)
        transcripts[uid] = sentence
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "demo.npz", **arrays)
    meta = {
        "description": (
            "Simulated character CTC outputs (log-probabilities, float16) of the first "
            f"{len(sentences)} sentences of dev_sentences.txt, made by simulate.py's "
            "simulate_char(sentence, index); the sentences are held out from the bundled "
            "language model's training text."
        ),
        "labels": list(sim.CHAR_LABELS),
        "blank": 0,
        "transcripts": transcripts,
    }
    with open(out / "demo.json", "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    frames = sum(a.shape[0] for a in arrays.values())
    print(
        f"wrote {len(arrays)} utterances, {frames} frames, "
        f"{(out / 'demo.npz').stat().st_size} bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
