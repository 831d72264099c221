"""``fastctc decode --shard K/N``, ``fastctc merge`` and ``fastctc warmup``.

Decoding runs in-process through ``cli.main`` with the greedy decoder (the split and the
files are under test, not the search); a few checks start a new interpreter: another hash
seed and working directory for the split, and a fresh process after ``fastctc warmup``.
Inputs are simulated CTC outputs (:mod:`tests.simulate`), written as ``.npy`` files, nested
folders and ``.npz`` members.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastctc import cli
from fastctc import io as fio
from tests.simulate import CHAR_LABELS, simulate_char

ROOT = Path(__file__).resolve().parents[1]
NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
WORDS = "the cat sat on a mat and a dog ran far away from home".split()


def shard_ref(uid: str, n: int) -> int:
    """The documented rule: first 8 bytes of the id's SHA-256, big-endian, modulo N."""
    return int(hashlib.sha256(uid.encode("utf-8")).hexdigest()[:16], 16) % n


def python(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, **env)
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """``npy/`` (10 files, 3 in a subfolder), ``npz/a.npz`` (9 members, one id not ASCII),
    ``labels.json``."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(16)
    arrays = {f"utt{i:02d}": simulate_char(" ".join(rng.choice(WORDS, 3)), i) for i in range(18)}
    arrays["\u00fctt-\u00e9"] = simulate_char("a cat", 99)
    (root / "npy" / "sub").mkdir(parents=True)
    (root / "npz").mkdir()
    ids = list(arrays)
    for k, uid in enumerate(ids[:10]):
        np.save(root / "npy" / ("sub" if k % 3 == 0 else "") / f"{uid}.npy", arrays[uid])
    np.savez(root / "npz" / "a.npz", **{uid: arrays[uid] for uid in ids[10:]})
    (root / "labels.json").write_text(json.dumps(CHAR_LABELS))
    return root


def decode(corpus: Path, out: Path, *args: str) -> int:
    argv = ["decode", *args, "--labels", str(corpus / "labels.json"), "--decoder", "greedy"]
    return cli.main([*argv, "--threads", "1", "-q", "-o", str(out)])


def ids_of(path: Path, fmt: str = "jsonl") -> list[str]:
    return [rec.uid for rec in fio.scan_output(path, fmt).records]


def npy_files(corpus: Path) -> list[str]:
    return sorted(str(p) for p in (corpus / "npy").rglob("*.npy"))


# ---------------------------------------------------------------- the split


@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.parametrize("kind", ["npy-files", "folders", "npz-members"])
def test_every_utterance_in_exactly_one_shard(tmp_path, corpus, n, kind):
    inputs = {
        "npy-files": npy_files(corpus),
        "folders": [str(corpus / "npy"), str(corpus / "npz")],
        "npz-members": [str(corpus / "npz" / "a.npz")],
    }[kind]
    assert decode(corpus, tmp_path / "all.jsonl", *inputs) == cli.EXIT_OK
    everything = ids_of(tmp_path / "all.jsonl")
    seen: list[str] = []
    for k in range(n):
        out = tmp_path / f"part{k}.jsonl"
        assert decode(corpus, out, *inputs, "--shard", f"{k}/{n}") == cli.EXIT_OK
        part = ids_of(out)
        assert all(shard_ref(uid, n) == k for uid in part)
        seen += part
    assert sorted(seen) == sorted(everything) and len(set(seen)) == len(seen)


def test_shards_are_balanced_and_follow_the_documented_hash():
    ids = [f"spk{i // 50}/utt{i}" for i in range(2000)]
    for n in (3, 7):
        counts = np.bincount([fio.shard_of(uid, n) for uid in ids], minlength=n)
        assert counts.min() > 0.8 * len(ids) / n
    assert all(fio.shard_of(uid, 7) == shard_ref(uid, 7) for uid in [*ids[:50], "\u00fc", ""])


def test_split_ignores_listing_order_working_directory_and_hash_seed(tmp_path, corpus, monkeypatch):
    files = npy_files(corpus)
    assert decode(corpus, tmp_path / "a.jsonl", *files, "--shard", "1/3") == cli.EXIT_OK
    assert decode(corpus, tmp_path / "b.jsonl", *files[::-1], "--shard", "1/3") == cli.EXIT_OK
    with monkeypatch.context() as m:
        m.chdir(corpus / "npy")
        relative = [os.path.relpath(f) for f in files[3:] + files[:3]]
        assert decode(corpus, tmp_path / "c.jsonl", *relative, "--shard", "1/3") == cli.EXIT_OK
    # another process, another hash seed, another working directory, the folder instead
    argv = "-m fastctc decode npy --labels labels.json --decoder greedy --shard 1/3 -q".split()
    r = python(*argv, "-o", str(tmp_path / "d.jsonl"), cwd=corpus, PYTHONHASHSEED="12345")
    assert r.returncode == 0, r.stderr
    want = sorted(ids_of(tmp_path / "a.jsonl"))
    assert want and all(sorted(ids_of(tmp_path / f"{x}.jsonl")) == want for x in "bcd")


def test_shard_usage_errors(tmp_path, corpus, capsys):
    for value, expected in [
        ("3/3", "K must be in 0..2"),
        ("-1/4", "K must be in 0..3"),
        ("1", "expected K/N"),
        ("a/b", "expected K/N"),
        ("0/0", "N (the number of shards) must be >= 1"),
    ]:
        with pytest.raises(SystemExit) as exc:
            decode(corpus, tmp_path / "x.jsonl", str(corpus / "npz"), f"--shard={value}")
        assert exc.value.code == cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert "argument --shard" in err and expected in err and value in err, err
    assert not (tmp_path / "x.jsonl").exists()


def test_resume_with_shards(tmp_path, corpus, capsys):
    inputs = [str(corpus / "npy"), str(corpus / "npz")]
    fresh, out = tmp_path / "fresh.jsonl", tmp_path / "out.jsonl"
    assert decode(corpus, fresh, *inputs, "--shard", "2/3") == cli.EXIT_OK
    lines = fresh.read_bytes().split(b"\n")
    assert len(lines) > 3
    out.write_bytes(lines[0] + b"\n" + lines[1][:20])  # interrupted in its second record
    for _ in range(2):  # the rerun completes it, a second rerun changes nothing
        assert decode(corpus, out, *inputs, "--shard", "2/3", "--resume") == cli.EXIT_OK
        assert out.read_bytes() == fresh.read_bytes()
    capsys.readouterr()
    # another shard's output given to --resume: a warning, and that shard's ids are decoded
    assert decode(corpus, out, *inputs, "--shard", "0/3", "--resume") == cli.EXIT_OK
    assert "ids of other shards than 0/3" in capsys.readouterr().err


# ---------------------------------------------------------------- merge


def merge(*args: str) -> int:
    return cli.main(["merge", "-q", *args])


@pytest.mark.parametrize("fmt", ["jsonl", "tsv"])
def test_merge_of_shards_equals_the_unsharded_output(tmp_path, corpus, fmt):
    inputs = [str(corpus / "npz"), str(corpus / "npy")]
    whole = tmp_path / f"whole.{fmt}"
    assert decode(corpus, whole, *inputs, "--format", fmt) == cli.EXIT_OK
    parts = [tmp_path / f"part{k}.{fmt}" for k in range(3)]
    for k, part in enumerate(parts):
        assert decode(corpus, part, *inputs, "--format", fmt, "--shard", f"{k}/3") == 0
    merged = tmp_path / f"merged.{fmt}"
    # with --inputs: the order of an unsharded run, so the very same bytes
    assert merge(*map(str, parts[::-1]), "-o", str(merged), "--inputs", *inputs) == 0
    assert merged.read_bytes() == whole.read_bytes()
    # without: the same records, sorted by id
    assert merge(*map(str, parts), "-o", str(merged)) == cli.EXIT_OK
    records = fio.scan_output(whole, fmt).records
    assert ids_of(merged, fmt) == sorted(r.uid for r in records)
    assert sorted(merged.read_bytes().splitlines()) == sorted(whole.read_bytes().splitlines())


def test_merge_reports_missing_and_duplicated_ids(tmp_path, corpus, capsys):
    inputs = [str(corpus / "npy"), str(corpus / "npz")]
    parts = [tmp_path / f"part{k}.jsonl" for k in range(3)]
    for k, part in enumerate(parts):
        assert decode(corpus, part, *inputs, "--shard", f"{k}/3") == cli.EXIT_OK
    lost = ids_of(parts[1])
    merged = tmp_path / "merged.jsonl"
    capsys.readouterr()

    # a shard missing: its ids are named, counted per shard; the others are written
    code = merge(str(parts[0]), str(parts[2]), "-o", str(merged), "--inputs", *inputs)
    err = capsys.readouterr().err
    assert code == cli.EXIT_SKIPPED
    assert all(f"missing id {uid!r}" in err for uid in lost)
    assert sorted(ids_of(merged)) == sorted(ids_of(parts[0]) + ids_of(parts[2]))
    code = merge(
        str(parts[0]), str(parts[2]), "-o", str(merged), "--inputs", *inputs, "--shards", "3"
    )
    assert code == cli.EXIT_SKIPPED
    assert f"missing ids per shard: 1/3: {len(lost)}" in capsys.readouterr().err
    ids_file = tmp_path / "refs.tsv"  # an id list: the first field of id<TAB>text lines
    ids_file.write_text("".join(f"{uid}\tsome text\n" for uid in [*lost[:1], *ids_of(parts[0])]))
    assert merge(str(parts[0]), "-o", str(merged), "--ids", str(ids_file)) == cli.EXIT_SKIPPED
    assert f"missing id {lost[0]!r}" in capsys.readouterr().err

    # the same id twice: kept once when the records are identical, else reported
    assert merge(*map(str, parts), str(parts[1]), "-o", str(merged)) == cli.EXIT_OK
    assert sorted(ids_of(merged)) == sorted(ids_of(parts[0]) + lost + ids_of(parts[2]))
    rec = json.loads(parts[1].read_text().splitlines()[0])
    other = tmp_path / "rerun.jsonl"
    other.write_text(json.dumps({**rec, "text": "something else"}) + "\n")
    assert merge(*map(str, parts), str(other), "-o", str(merged)) == cli.EXIT_SKIPPED
    err = capsys.readouterr().err
    assert f"id {rec['id']!r} has different records in {parts[1]} line 1 and {other}" in err
    kept = [json.loads(x) for x in merged.read_text().splitlines()]
    assert [r for r in kept if r["id"] == rec["id"]] == [rec]

    # a shard that did not run, one cut short, and wrong files
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(parts[1].read_bytes()[:-10])
    missing_file = str(tmp_path / "part9.jsonl")
    assert merge(str(cut), missing_file, "-o", str(merged)) == cli.EXIT_SKIPPED
    err = capsys.readouterr().err
    assert "part9.jsonl: no such file" in err and "cut.jsonl: its last line is cut short" in err
    before = parts[0].read_bytes()
    assert merge(*map(str, parts), "-o", str(parts[0])) == cli.EXIT_USAGE
    assert parts[0].read_bytes() == before
    assert "is the input" in capsys.readouterr().err
    tsv = tmp_path / "part.tsv"
    assert decode(corpus, tsv, *inputs, "--format", "tsv", "--shard", "1/3") == cli.EXIT_OK
    assert merge(str(parts[0]), str(tsv), "-o", str(merged)) == cli.EXIT_USAGE
    assert "the outputs mix formats" in capsys.readouterr().err
    assert merge(str(corpus / "labels.json"), "-o", str(merged)) == cli.EXIT_USAGE
    assert "is not a fastctc" in capsys.readouterr().err


# ---------------------------------------------------------------- warmup

KERNELS = r"""
import importlib, json, pkgutil, sys
from numba.core.dispatcher import Dispatcher
from fastctc import cli, kernels


def report():
    "Signatures compiled or loaded in this process; how many were loaded, how many compiled."
    sigs, hits, misses = [], 0, 0
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module("fastctc.kernels." + info.name)
        for name, obj in vars(module).items():
            if isinstance(obj, Dispatcher):
                sigs += [f"{info.name}.{name}{sig}" for sig in obj.signatures]
                hits += sum(obj.stats.cache_hits.values())
                misses += sum(obj.stats.cache_misses.values())
    print(json.dumps({"signatures": sigs, "hits": hits, "misses": misses}))
"""

WARMUP = (
    KERNELS
    + r"""
assert cli.main(["warmup"]) == 0
report()
"""
)

DECODE = (
    KERNELS
    + r"""
corpus, out = sys.argv[1], sys.argv[2]
common = [corpus + "/npz", "--labels", corpus + "/labels.json", "--threads", "1", "-q"]
for extra in (["--decoder", "greedy"], ["--beam-width", "8"], ["--lm", "default"]):
    assert cli.main(["decode", *common, *extra, "-o", out]) == 0
with open(out + ".tsv", "w", encoding="utf-8") as fh:
    fh.writelines(line.split('"')[3] + "\tthe cat\n" for line in open(out, encoding="utf-8"))
assert cli.main(["align", *common, "--transcripts", out + ".tsv", "-o", out]) == 0
report()
"""
)


@pytest.mark.skipif(NO_JIT, reason="NUMBA_DISABLE_JIT=1: nothing is compiled or cached")
def test_warmup_fills_the_cache_a_new_process_decodes_from(tmp_path, corpus):
    r = python("-c", WARMUP)
    assert r.returncode == 0, r.stderr
    assert "kernel signatures compiled" in r.stdout
    held = [line for line in r.stdout.splitlines() if " holds " in line]
    folders = [line.split(" holds ")[0].removeprefix("fastctc warmup: ") for line in held]
    assert folders and all(list(Path(f).glob("*.nbi")) for f in folders), r.stdout
    warmed = json.loads(r.stdout.strip().splitlines()[-1])
    # a new process decoding (greedy, beam, beam + LM) and aligning compiles nothing
    r = python("-c", DECODE, str(corpus), str(tmp_path / "out.jsonl"))
    assert r.returncode == 0, r.stderr
    decoded = json.loads(r.stdout.strip().splitlines()[-1])
    assert decoded["misses"] == 0 and decoded["hits"] > 0, decoded
    # and warmup covers them whatever was in the cache before it
    assert set(decoded["signatures"]) <= set(warmed["signatures"])
