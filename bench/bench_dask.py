"""Threads against a local Dask cluster: ``fastctc decode`` with the 4-gram LM, three ways.

2000 simulated utterances (``simulate_char`` of the 200 held-out sentences of
``../shared/data``, ten seeds each, in 20 ``.npz`` archives), the word 4-gram
``lm_4gram.arpa`` with ``vocab.txt`` as unigrams, beam width 64, decoded by

- ``--threads 2``: one process, two decoding threads (the reference);
- ``--scheduler local:2``: a LocalCluster of two worker processes, one thread each;
- ``--scheduler local:1 --threads 2``: one worker process, two threads.

Each run is a fresh ``python -m fastctc decode`` process: the wall time covers start-up,
the cluster's start, loading the LM (once per process) and decoding; the overhead is the
difference to the threaded run. The time to the first result is when the first record
reaches the output file, with a warm Numba cache and with a cold one (``NUMBA_CACHE_DIR`` set
to an empty folder for the process and its workers; that run is stopped after its first
record). Warm runs are repeated, interleaved, and the best of each kind kept (the machine is
shared). The outputs of all warm runs must hold the same records.

    python bench/bench_dask.py                 # 2000 utterances, warm and cold
    python bench/bench_dask.py --count 400 --no-cold

Needs ``dask[distributed]`` (``pip install -e ".[dask]"``) and the shared data folder
``../shared/data`` (``simulate.py``, ``dev_sentences.txt``, ``lm_4gram.arpa``, ``vocab.txt``;
see its README for how the model was built from ``corpus_train.txt.gz``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _data import DATA, load_simulator

ROOT = Path(__file__).resolve().parents[1]
NEEDED = ("simulate.py", "dev_sentences.txt", "lm_4gram.arpa", "vocab.txt")

RUNS = {
    "threads 2": ["--threads", "2"],
    "local:2 (2 x 1 thread)": ["--scheduler", "local:2"],
    "local:1 (1 x 2 threads)": ["--scheduler", "local:1", "--threads", "2"],
}


def write_inputs(folder: Path, count: int) -> None:
    sim = load_simulator()
    sentences = (DATA / "dev_sentences.txt").read_text(encoding="utf-8").split("\n")
    sentences = [s for s in sentences if s.strip()]
    arrays = {
        f"utt{i:05d}": sim.simulate_char(sentences[i % len(sentences)], i) for i in range(count)
    }
    ids = list(arrays)
    for k in range(0, count, 100):
        np.savez(folder / f"part{k // 100:03d}.npz", **{i: arrays[i] for i in ids[k : k + 100]})
    (folder.parent / "labels.json").write_text(json.dumps(sim.CHAR_LABELS))


def run(argv: list[str], out: Path, env: dict[str, str], stop_at_first: bool) -> dict:
    """Run ``fastctc decode``; wall time, time to the first record, summary line."""
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastctc", "decode", *argv, "-o", str(out)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    first = None
    while proc.poll() is None:
        if first is None and out.exists() and out.stat().st_size > 0:
            first = time.perf_counter() - t0
            if stop_at_first:
                proc.send_signal(signal.SIGINT)  # stops the cluster too
                break
        time.sleep(0.02)
    _, err = proc.communicate(timeout=600)
    wall = time.perf_counter() - t0
    if first is None and out.exists() and out.stat().st_size > 0:
        first = wall
    if proc.returncode not in (0, 130) or (not stop_at_first and proc.returncode):
        raise RuntimeError(f"fastctc decode {' '.join(argv)} failed:\n{err[-3000:]}")
    summary = [ln for ln in err.splitlines() if ln.startswith("fastctc decode: ")]
    return {"wall": wall, "first": first, "summary": summary[-1] if summary else ""}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--beam-width", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="warm runs of each kind (best kept)")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-cache runs")
    args = ap.parse_args()
    missing = [n for n in NEEDED if not (DATA / n).exists()]
    if missing:
        sys.exit(
            f"missing {', '.join(missing)} in {DATA}: this benchmark uses the shared data "
            "folder beside the repository (../shared/data; see its README.md)."
        )
    try:
        import distributed
    except ImportError:
        sys.exit('dask.distributed is not installed; pip install -e ".[dask]"')
    import numba

    import fastctc

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        write_inputs(tmp / "in", args.count)
        common = [str(tmp / "in"), "--labels", str(tmp / "labels.json")]
        common += ["--lm", str(DATA / "lm_4gram.arpa"), "--unigrams", str(DATA / "vocab.txt")]
        common += ["--beam-width", str(args.beam_width)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        # a first run fills Numba's cache (and the page cache with the model)
        run([*common, "--threads", "2", "-q"], tmp / "fill.jsonl", env, stop_at_first=True)
        results: dict[str, dict] = {}
        outputs: set[tuple[str, ...]] = set()
        for _ in range(args.repeat):  # interleaved, the best of each kept
            for k, (name, extra) in enumerate(RUNS.items()):
                out = tmp / f"{k}.jsonl"
                r = run([*common, *extra], out, env, stop_at_first=False)
                outputs.add(tuple(sorted(out.read_text(encoding="utf-8").splitlines())))
                best = results.setdefault(name, r)
                best["wall"] = min(best["wall"], r["wall"])
                best["first"] = min(best["first"], r["first"])
        for k, (name, extra) in enumerate(RUNS.items()):
            if not args.no_cold:
                cold_env = {**env, "NUMBA_CACHE_DIR": str(tmp / f"cold{k}")}
                cold = run([*common, *extra, "-q"], tmp / "cold.jsonl", cold_env, True)
                results[name]["cold_first"] = cold["first"]
        same = len(outputs) == 1
        counts = {len(o) for o in outputs}

    print(
        f"fastctc {fastctc.__version__}, numba {numba.__version__}, distributed "
        f"{distributed.__version__}, Python {platform.python_version()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    )
    print(
        f"{args.count} utterances, lm_4gram.arpa + vocab.txt, beam width {args.beam_width}; "
        f"whole processes (start-up, cluster, LM loading, decoding); best of {args.repeat} "
        "warm runs, one cold run"
    )
    base = results["threads 2"]["wall"]
    print()
    head = f"{'run':<26}{'wall (s)':>10}{'overhead':>10}{'utt/s':>8}{'first, warm':>13}"
    print(head + ("" if args.no_cold else f"{'first, cold':>13}"))
    for name, r in results.items():
        line = (
            f"{name:<26}{r['wall']:>10.2f}{r['wall'] - base:>+10.2f}"
            f"{args.count / r['wall']:>8.0f}{r['first']:>12.2f}s"
        )
        if not args.no_cold:
            line += f"{r['cold_first']:>12.2f}s"
        print(line)
    print()
    for name, r in results.items():
        print(f"{name} (first run): {r['summary']}")
    print(
        f"\noutputs identical across all runs: {same} "
        f"({', '.join(map(str, sorted(counts)))} records)"
    )


if __name__ == "__main__":
    main()
