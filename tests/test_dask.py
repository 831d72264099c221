"""fastctc.dask and ``fastctc decode --scheduler`` on local clusters of worker processes.

The utterances are simulated from held-out sentences of the suite's small 4-gram
(:mod:`tests.small_lm`); the reference is the LM decoder in this process. Each cluster start
costs a few seconds (processes, imports, the model in each worker), so there are three: one
shared, one whose worker is killed, and the command line's ``local:2``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

import fastctc
from fastctc import cli
from fastctc import io as fio
from tests import small_lm
from tests.simulate import CHAR_LABELS, simulate_char

distributed = pytest.importorskip("distributed")
import fastctc.dask as fdask  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT") == "1",
    reason="too slow with NUMBA_DISABLE_JIT=1 (worker processes decode with the LM)",
)

BEAM = 16
LM = {"lm": str(small_lm.ARPA), "unigrams": str(small_lm.UNIGRAMS), "beam_width": BEAM}


@pytest.fixture(scope="module")
def utterances() -> dict[str, np.ndarray]:
    sentences = small_lm.dev_sentences(160)
    return {f"utt{i:03d}": simulate_char(s, i) for i, s in enumerate(sentences)}


@pytest.fixture(scope="module")
def reference(utterances) -> dict[str, str]:
    """Texts of one process's decode (which also fills Numba's cache for the workers)."""
    decoder = fastctc.build_ctcdecoder(
        CHAR_LABELS,
        kenlm_model_path=str(small_lm.ARPA),
        unigrams=small_lm.UNIGRAMS.read_text(encoding="utf-8").split(),
    )
    beams = decoder.decode_beams_batch(None, list(utterances.values()), beam_width=BEAM)
    return {uid: b[0][0] for uid, b in zip(utterances, beams, strict=True)}


@pytest.fixture(scope="module")
def client(reference):
    with fdask.start_local(2) as c:
        yield c


def test_import_fastctc_does_not_import_dask():
    code = (
        "import sys, fastctc, fastctc.dask; "
        "sys.exit(any(m in sys.modules for m in ('dask', 'distributed')))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_recipe_options_are_the_command_lines():
    r = fdask.make_recipe(["<pad>", "a"], beam_width=8, hotwords=["a"])
    assert (r.blank, r.namespace().beam_width, r.namespace().hotwords) == (0, 8, ["a"])
    assert r == fdask.make_recipe(["<pad>", "a"], hotwords=("a",), beam_width=8)
    with pytest.raises(TypeError, match="unknown option.*beam_size"):
        fdask.make_recipe(["", "a"], beam_size=8)
    with pytest.raises(ValueError, match="blank"):
        fdask.make_recipe(["a", "b"])


def test_decode_arrays_and_files_once_per_worker(client, utterances, reference, tmp_path):
    """Texts as one process's; each worker builds the decoder once, over tasks and calls."""
    ids = list(utterances)
    np.savez(tmp_path / "part.npz", **{i: utterances[i] for i in ids[:40]})
    for i in ids[40:60]:
        np.save(tmp_path / f"{i}.npy", utterances[i])
    inputs = [str(tmp_path), *((i, utterances[i]) for i in ids[60:])]
    records = list(fdask.decode(client, inputs, CHAR_LABELS, batch_size=8, **LM))
    assert Counter(r["id"] for r in records) == Counter(ids)
    assert {r["id"]: r["text"] for r in records} == reference
    rec = next(r for r in records if r["id"] == ids[0])
    assert set(rec) == {"id", "text", "num_frames", "score", "logit_score", "lm_score"} | {
        "words",
        "source",
    }
    assert rec["source"] == f"{tmp_path / 'part.npz'}[{ids[0]}]"
    assert next(r for r in records if r["id"] == ids[-1])["source"] == f"<memory>[{ids[-1]}]"
    assert list(client.run(fdask.decoder_builds).values()) == [1, 1]

    again = list(
        fdask.decode(client, utterances, CHAR_LABELS, batch_size=8, skip_ids=ids[:100], **LM)
    )
    assert sorted(r["id"] for r in again) == ids[100:]
    assert list(client.run(fdask.decoder_builds).values()) == [1, 1]  # the same recipe


def test_problems_are_reported_or_raised(client, utterances, tmp_path):
    ids = list(utterances)[:3]
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    inputs = [*((i, utterances[i]) for i in ids), (ids[0], utterances[ids[0]]), tmp_path]
    inputs.append(("wide", np.zeros((5, 3), np.float32)))
    seen: list[tuple[str, str]] = []
    records = list(
        fdask.decode(
            client, inputs, CHAR_LABELS, decoder="greedy", on_problem=lambda *p: seen.append(p)
        )
    )
    assert sorted(r["id"] for r in records) == sorted(ids)
    assert sorted(where for where, _ in seen) == sorted(
        [f"<memory>[{ids[0]}]", str(tmp_path / "bad.npy"), "<memory>[wide]"]
    )
    reasons = " | ".join(why for _, why in seen)
    assert "duplicate id" in reasons and "3 columns but there are 29 labels" in reasons
    with pytest.raises(ValueError, match="duplicate id"):
        list(fdask.decode(client, inputs[:4], CHAR_LABELS, decoder="greedy"))


def test_killed_worker_loses_nothing(utterances, reference):
    """A worker killed mid-run: its batches run again on the other, each id comes once."""
    with fdask.start_local(2) as client:
        client.wait_for_workers(2)
        pids = client.run(os.getpid)
        records, killed = [], None
        for rec in fdask.decode(client, utterances, CHAR_LABELS, batch_size=4, **LM):
            records.append(rec)
            if killed is None:
                busy = {w: len(t) for w, t in client.processing().items()}
                killed = max(busy, key=busy.get)
                assert busy[killed] > 0  # it dies holding a task
                os.kill(pids[killed], signal.SIGKILL)
    assert killed is not None
    assert len(records) == len(utterances)
    assert Counter(r["id"] for r in records) == Counter(list(utterances))
    assert {r["id"]: r["text"] for r in records} == reference


def test_command_line_scheduler_writes_the_local_output(utterances, tmp_path, client):
    """--scheduler local:2 writes the local run's records (in another order); --resume with
    a scheduler's address finishes a cut file."""
    folder = tmp_path / "in"
    folder.mkdir()
    ids = list(utterances)[:60]
    np.savez(folder / "a.npz", **{i: utterances[i] for i in ids[:30]})
    for i in ids[30:]:
        np.save(folder / f"{i}.npy", utterances[i])
    (tmp_path / "labels.json").write_text(json.dumps(CHAR_LABELS))
    common = [str(folder), "--labels", str(tmp_path / "labels.json"), "--lm", LM["lm"]]
    common += ["--unigrams", LM["unigrams"], "--beam-width", str(BEAM), "--batch-size", "8"]
    assert cli.main(["decode", *common, "-q", "-o", str(tmp_path / "local.jsonl")]) == 0
    dask_out = tmp_path / "dask.jsonl"
    assert cli.main(["decode", *common, "-q", "--scheduler", "local:2", "-o", str(dask_out)]) == 0

    def records(path):
        return sorted(path.read_text().splitlines())

    assert records(dask_out) == records(tmp_path / "local.jsonl")

    lines = dask_out.read_text().splitlines(keepends=True)
    dask_out.write_text("".join(lines[:25]) + lines[25][:10])  # cut mid-line
    address = client.scheduler.address
    argv = ["decode", *common, "-q", "--resume", "--scheduler", address, "-o", str(dask_out)]
    assert cli.main(argv) == 0
    assert records(dask_out) == records(tmp_path / "local.jsonl")


def test_command_line_shards_problems_and_usage_errors(utterances, tmp_path, client, capsys):
    """On a running cluster (its address): --shard with TSV as locally, a bad input skipped
    (exit 3) or stopping the run under --strict (exit 1), a usage error found by a worker."""
    folder = tmp_path / "in"
    folder.mkdir()
    ids = list(utterances)[:20]
    np.savez(folder / "a.npz", **{i: utterances[i] for i in ids})
    (tmp_path / "labels.json").write_text(json.dumps(CHAR_LABELS))
    common = [str(folder), "--labels", str(tmp_path / "labels.json"), "--decoder", "greedy"]
    common += ["--shard", "1/2", "--format", "tsv", "-q"]
    address = ["--scheduler", client.scheduler.address]
    assert cli.main(["decode", *common, "-o", str(tmp_path / "local.tsv")]) == 0
    assert cli.main(["decode", *common, *address, "-o", str(tmp_path / "dask.tsv")]) == 0
    local = sorted((tmp_path / "local.tsv").read_text().splitlines())
    assert sorted((tmp_path / "dask.tsv").read_text().splitlines()) == local
    assert 0 < len(local) < len(ids)

    bad = next(f"bad{k}" for k in range(99) if fio.shard_of(f"bad{k}", 2) == 1)
    (folder / f"{bad}.npy").write_bytes(b"not an array")
    capsys.readouterr()
    assert cli.main(["decode", *common, *address, "-o", str(tmp_path / "skip.tsv")]) == 3
    assert "skipping" in capsys.readouterr().err
    argv = ["decode", *common, *address, "--strict", "-o", str(tmp_path / "strict.tsv")]
    assert cli.main(argv) == 1
    assert "stopping (--strict)" in capsys.readouterr().err
    argv = ["decode", str(folder), "--labels", str(tmp_path / "labels.json"), *address]
    assert cli.main([*argv, "--nbest", "3", "--beam-width", "2", "-o", "-"]) == 2
    assert "--nbest 3 exceeds --beam-width 2" in capsys.readouterr().err
