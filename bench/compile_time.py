"""First-call time of fastctc in a fresh process, with a cold and with a warm Numba cache.

Each measurement starts a new interpreter that imports fastctc and makes one small call of
the loss (with gradient), of greedy decoding and of the prefix beam search, then builds the LM
decoder with the bundled 4-gram (model loading) and decodes one utterance of the bundled
example set with it, timing import, each first call and the model loading separately.
"Cold" points NUMBA_CACHE_DIR at an empty folder (everything compiles); "warm" runs again
with the same folder (compiled code is loaded from the cache).

    python bench/compile_time.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import fastctc
t1 = time.perf_counter()
lp = fastctc.log_softmax(np.zeros((8, 2, 5), dtype=np.float32))
fastctc.ctc_loss(lp, [[1, 2], [3, 3]], [8, 8], [2, 2], return_grad=True)
t2 = time.perf_counter()
fastctc.greedy_decode_batch(lp.transpose(1, 0, 2))
t3 = time.perf_counter()
fastctc.beam_search(lp[:, 0], beam_width=4)
t4 = time.perf_counter()
lm = fastctc.data.default_lm()
dec = fastctc.build_ctcdecoder(lm.labels, kenlm_model_path=lm.path, unigrams=lm.unigrams)
t5 = time.perf_counter()
utt = fastctc.data.demo().log_probs[1]
t6 = time.perf_counter()
dec.decode(utt)
t7 = time.perf_counter()
print(json.dumps({
    "import": t1 - t0, "loss": t2 - t1, "greedy": t3 - t2, "beam": t4 - t3,
    "lm_load": t5 - t4, "lm_decode": t7 - t6,
}))
"""

#: (key in the child's output, column title)
COLUMNS = (
    ("import", "import s"),
    ("loss", "loss 1st call s"),
    ("greedy", "greedy 1st call s"),
    ("beam", "beam_search 1st call s"),
    ("lm_load", "LM load s"),
    ("lm_decode", "LM decode 1st call s"),
)


def run(cache_dir: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        cold = run(cache)
        warm = run(cache)
    print(f"{'cache':<6}" + "".join(f" {title:>{len(title)}}" for _, title in COLUMNS))
    for name, r in (("cold", cold), ("warm", warm)):
        print(f"{name:<6}" + "".join(f" {r[key]:{len(title)}.2f}" for key, title in COLUMNS))


if __name__ == "__main__":
    main()
