"""First-call time of fastctc in a fresh process, with a cold and with a warm Numba cache.

Each measurement starts a new interpreter that imports fastctc and makes one small call of
the loss (with gradient) and of greedy decoding, timing import and first call separately.
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
print(json.dumps({"import": t1 - t0, "loss": t2 - t1, "greedy": t3 - t2}))
"""


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
    print(f"{'cache':<6} {'import s':>9} {'loss 1st call s':>16} {'greedy 1st call s':>18}")
    for name, r in (("cold", cold), ("warm", warm)):
        print(f"{name:<6} {r['import']:9.2f} {r['loss']:16.2f} {r['greedy']:18.2f}")


if __name__ == "__main__":
    main()
