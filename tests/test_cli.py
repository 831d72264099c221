"""The ``fastctc`` command line, end to end through ``python -m fastctc`` on temporary folders.

Each subprocess pays Python's and Numba's start-up (about a second), so the flows are few and
small; error messages of the argument checks run in-process through ``cli.main``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastctc
from fastctc import cli
from fastctc import io as fio

ROOT = Path(__file__).resolve().parents[1]
NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
heavy = pytest.mark.skipif(NO_JIT, reason="too slow with NUMBA_DISABLE_JIT=1 (kernels interpreted)")


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "fastctc", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ---------------------------------------------------------------- independent references


def greedy_ref(lp: np.ndarray, labels: list[str], blank: int = 0) -> str:
    """Argmax per frame, merge repeats, drop blanks, join labels (plain Python)."""
    out, prev = [], None
    for k in np.argmax(lp, axis=1).tolist():
        if k != prev and k != blank:
            out.append(labels[k])
        prev = k
    return " ".join("".join(out).split())


def levenshtein(a: list, b: list) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def rates(refs: list[str], hyps: list[str]) -> tuple[float, float]:
    ce = sum(levenshtein(list(r), list(h)) for r, h in zip(refs, hyps, strict=True))
    we = sum(levenshtein(r.split(), h.split()) for r, h in zip(refs, hyps, strict=True))
    return ce / sum(map(len, refs)), we / sum(len(r.split()) for r in refs)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def demo():
    d = fastctc.data.demo()
    arrays = dict(zip(d.ids, d.log_probs, strict=True))
    return arrays, dict(zip(d.ids, d.transcripts, strict=True)), d.labels


@pytest.fixture()
def corpus(tmp_path, demo):
    """A folder of 6 utterances: three .npy files (one nested) and an .npz with three."""
    arrays, refs, labels = demo
    ids = list(arrays)[:6]
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    np.save(d / f"{ids[0]}.npy", arrays[ids[0]])
    np.save(d / f"{ids[1]}.npy", arrays[ids[1]].astype(np.float64))
    np.save(d / "sub" / f"{ids[2]}.npy", arrays[ids[2]].astype(np.float16))
    np.savez(d / "a_more.npz", **{i: arrays[i] for i in ids[3:]})
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    (tmp_path / "refs.tsv").write_text("".join(f"{i}\t{refs[i]}\n" for i in ids))
    return d, ids, {i: arrays[i] for i in ids}, {i: refs[i] for i in ids}, labels


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------- decode


def test_decode_jsonl_schema_text_and_refs(tmp_path, corpus):
    d, ids, arrays, refs, labels = corpus
    out = tmp_path / "out.jsonl"
    r = run_cli(
        "decode",
        d,
        "--labels",
        tmp_path / "labels.json",
        "--decoder",
        "greedy",
        "--refs",
        tmp_path / "refs.tsv",
        "--frame-shift",
        "0.02",
        "-o",
        out,
    )
    assert r.returncode == 0, r.stderr
    recs = read_jsonl(out)
    # directory order: sorted paths, .npz members in stored order
    assert [x["id"] for x in recs] == [ids[3], ids[4], ids[5], ids[0], ids[1], ids[2]]
    hyps = {}
    for rec in recs:
        assert set(rec) == {"id", "text", "num_frames", "score", "logit_score", "words", "source"}
        lp = arrays[rec["id"]].astype(np.float32)
        assert rec["num_frames"] == lp.shape[0]
        assert rec["text"] == greedy_ref(lp, labels)
        best_path = float(lp.max(axis=1).astype(np.float64).sum())
        assert rec["score"] == pytest.approx(best_path, abs=2e-3)
        assert [w["word"] for w in rec["words"]] == rec["text"].split()
        am = np.argmax(lp, axis=1)
        prev_end = 0
        for w in rec["words"]:
            s, e = w["start_frame"], w["end_frame"]
            assert prev_end <= s < e <= lp.shape[0]
            # a greedy word span starts on its first letter and ends after its last one
            assert labels[am[s]] == w["word"][0] and labels[am[e - 1]] == w["word"][-1]
            assert w["start"] == pytest.approx(0.02 * s) and w["end"] == pytest.approx(0.02 * e)
            prev_end = e
        hyps[rec["id"]] = rec["text"]
    c, w = rates([refs[i] for i in hyps], [hyps[i] for i in hyps])
    assert f"CER {100 * c:.2f}% WER {100 * w:.2f}% over 6 utterances" in r.stderr
    frames = sum(a.shape[0] for a in arrays.values())
    assert f"6 utterances ({frames} frames)" in r.stderr
    assert "of audio at 0.02 s/frame" in r.stderr and "RTF" in r.stderr


def test_bad_inputs_skipped_strict_stops_and_resume(tmp_path, corpus):
    d, ids, arrays, refs, labels = corpus
    bad_bytes = d / f"{ids[1]}x_garbage.npy"
    bad_bytes.write_bytes(b"not a numpy file")
    bad_cols = d / "b_wrong_columns.npy"
    np.save(bad_cols, np.log(np.full((5, 7), 1 / 7, dtype=np.float32)))
    bad_logits = d / "c_logits.npy"
    np.save(bad_logits, np.ones((4, len(labels)), dtype=np.float32))
    nan = arrays[ids[0]].copy()
    nan[3, 2] = np.nan
    bad_nan = d / "sub" / "d_nan.npy"
    np.save(bad_nan, nan)
    out = tmp_path / "out.tsv"
    common = [
        "--labels",
        tmp_path / "labels.json",
        "--decoder",
        "greedy",
        "--format",
        "tsv",
        "--batch-size",
        "2",
        "-o",
        out,
    ]

    # --strict: stops at the first bad file (second in sorted order, after a_more.npz) and
    # keeps the three utterances read before it
    r = run_cli("decode", d, "--strict", *common)
    assert r.returncode == 1
    assert f"error: {bad_cols}: " in r.stderr and "(--strict)" in r.stderr
    lines = out.read_text().splitlines()
    assert [x.split("\t")[0] for x in lines] == ids[3:6]

    # an interrupted write leaves half a line: resume drops it and decodes the rest
    with open(out, "a") as fh:
        fh.write(lines[0][:7])
    r = run_cli("decode", d, "--resume", *common)
    assert r.returncode == 3, r.stderr
    for path in (bad_bytes, bad_cols, bad_logits, bad_nan):
        assert f"skipping {path}" in r.stderr
    assert "34 columns" not in r.stderr and "7 columns but there are 29 labels" in r.stderr
    assert "--input-kind" in r.stderr and "frame 3 contains NaN" in r.stderr
    assert "3 already done (--resume)" in r.stderr and "4 input(s) skipped" in r.stderr
    got = [x.split("\t") for x in out.read_text().splitlines()]
    assert sorted(g[0] for g in got) == sorted(ids)  # every id once, none twice
    for uid, text, score in got:
        assert text == greedy_ref(arrays[uid].astype(np.float32), labels)
        assert float(score) <= 0


def test_input_kinds_and_stdout(tmp_path, demo):
    arrays, refs, labels = demo
    uid = next(iter(arrays))
    lp = arrays[uid].astype(np.float64)
    (tmp_path / "labels.txt").write_text("\n".join(labels) + "\n")  # blank = empty line
    rng = np.random.default_rng(0)
    logits = lp + rng.normal(0, 1, size=(lp.shape[0], 1))  # per-frame shift: same softmax
    np.save(tmp_path / "p.npy", np.exp(lp).astype(np.float32))
    np.save(tmp_path / "l.npy", logits.astype(np.float32))
    texts = []
    for kind, f in (("probs", "p.npy"), ("logits", "l.npy")):
        r = run_cli(
            "decode",
            tmp_path / f,
            "--labels",
            tmp_path / "labels.txt",
            "--decoder",
            "greedy",
            "--input-kind",
            kind,
            "--format",
            "tsv",
            "--quiet",
        )
        assert r.returncode == 0, r.stderr
        assert r.stderr == ""  # --quiet: no summary
        texts.append(r.stdout.split("\t")[1])
    assert texts == [greedy_ref(lp, labels)] * 2


@heavy
def test_demo_runs(demo):
    arrays, refs, labels = demo
    r = run_cli("demo", "--show", "1")
    assert r.returncode == 0, r.stderr
    ids = list(arrays)
    hyps = [greedy_ref(arrays[i].astype(np.float32), labels) for i in ids]
    c, w = rates([refs[i] for i in ids], hyps)
    lines = r.stdout.splitlines()
    table = lines[next(i for i, x in enumerate(lines) if x.split()[:2] == ["mode", "WER"]) :]
    greedy = next(x.split() for x in table if x.split()[:1] == ["greedy"])
    assert greedy[1:3] == [f"{100 * w:.1f}%", f"{100 * c:.1f}%"]
    first = lines.index(ids[0])
    block = lines[first + 1 : lines.index("", first)]
    shown = {x.split()[0]: " ".join(x.split()[1:]) for x in block}
    assert shown["reference"] == refs[ids[0]] and shown["greedy"] == hyps[0]
    beam = next(x.split() for x in table if x.split()[:2] == ["beam", "(64)"])
    lm = next(x.split() for x in table if x.split()[:3] == ["beam", "+", "LM"])
    assert beam[2].endswith("%") and lm[3].endswith("%"), r.stdout
    # the language model must help a lot on these held-out sentences
    assert float(lm[3][:-1]) < 0.7 * float(greedy[1][:-1])


# ---------------------------------------------------------------- in-process: errors, units


def test_usage_errors(tmp_path, capsys, demo):
    arrays, refs, labels = demo
    np.save(tmp_path / "a.npy", next(iter(arrays.values())))
    (tmp_path / "nolabel.txt").write_text("a\nb\n")
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    lab = ["--labels", str(tmp_path / "labels.json")]
    cases = [
        (
            ["decode", str(tmp_path / "a.npy"), "--labels", str(tmp_path / "nolabel.txt")],
            "cannot tell which of the 2 labels",
        ),
        (["decode", str(tmp_path / "a.npy"), *lab, "--resume"], "--resume needs an output"),
        (
            ["decode", str(tmp_path / "a.npy"), *lab, "--decoder", "greedy", "--lm", "default"],
            "need --decoder beam",
        ),
        (
            ["decode", str(tmp_path / "a.npy"), *lab, "--lm", str(tmp_path / "nope.bin")],
            "no such file",
        ),
        (["decode", str(tmp_path / "a.npy"), *lab, "--blank", "40"], "outside the 29 labels"),
        (
            ["decode", str(tmp_path / "a.npy"), *lab, "--nbest", "5", "--beam-width", "2"],
            "exceeds --beam-width",
        ),
        (
            [
                "align",
                str(tmp_path / "a.npy"),
                *lab,
                "--transcripts",
                str(tmp_path / "a.npy"),
                "--format",
                "ctm",
            ],
            "--transcripts",
        ),
    ]
    for argv, message in cases:
        assert cli.main(argv) == cli.EXIT_USAGE, argv
        assert message in capsys.readouterr().err, argv
    with pytest.raises(SystemExit) as exc:
        cli.main(["decode", str(tmp_path / "a.npy"), *lab, "--beam-width", "0"])
    assert exc.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_read_labels_formats(tmp_path):
    (tmp_path / "l.txt").write_text("\n \na\n'\n")
    assert fio.read_labels(tmp_path / "l.txt") == ["", " ", "a", "'"]
    (tmp_path / "hf.json").write_text(json.dumps({"<pad>": 0, "|": 2, "a": 1}))
    assert fio.read_labels(tmp_path / "hf.json") == ["<pad>", "a", "|"]
    (tmp_path / "inv.json").write_text(json.dumps({"1": "a", "0": ""}))
    assert fio.read_labels(tmp_path / "inv.json") == ["", "a"]
    (tmp_path / "hole.json").write_text(json.dumps({"a": 0, "b": 2}))
    with pytest.raises(ValueError, match="without holes"):
        fio.read_labels(tmp_path / "hole.json")
    assert fio.find_blank(["<pad>", "a", "|"]) == 0
    assert fio.find_blank(["a", "b"]) is None


def test_vocabulary_words_and_encode():
    char = fio.Vocabulary.build(["", "|", "a", "b"], 0)
    assert char.words([2, 3, 1, 3], [0, 2, 4, 6], [1, 3, 5, 8]) == [("ab", 0, 3), ("b", 6, 8)]
    assert char.encode("ab  b") == [2, 3, 1, 3]
    with pytest.raises(ValueError, match="'c'"):
        char.encode("abc")
    sp = fio.Vocabulary.build(["", "\u2581th", "e", "\u2581a", "\u2581", "t", "h"], 0)
    assert sp.words([1, 2, 3], [0, 3, 5], [1, 4, 6]) == [("the", 0, 4), ("a", 5, 6)]
    assert sp.encode("the a") == [1, 2, 3]
    assert sp.encode("tt") == [4, 5, 5]
    wp = fio.Vocabulary.build(["", "th", "##e", "a"], 0)
    assert wp.words([1, 2, 3], [0, 2, 4], [1, 3, 5]) == [("the", 0, 3), ("a", 4, 5)]


def test_to_log_probs_checks():
    x = np.log(np.full((3, 4), 0.25, dtype=np.float32))
    with pytest.raises(ValueError, match="2-D"):
        fio.to_log_probs(x[0], 4, "log-probs")
    with pytest.raises(ValueError, match="floating-point"):
        fio.to_log_probs(np.zeros((3, 4), dtype=np.int32), 4, "log-probs")
    with pytest.raises(ValueError, match="does not sum to probability 1"):
        fio.to_log_probs(x - 1.0, 4, "log-probs")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        fio.to_log_probs(np.full((2, 4), 2.0, dtype=np.float32), 4, "probs")
    assert fio.to_log_probs(np.zeros((0, 4), np.float32), 4, "log-probs").shape == (0, 4)


def test_plot_writes_png(tmp_path, demo):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    arrays, refs, labels = demo
    np.savez(tmp_path / "u.npz", **{k: arrays[k] for k in list(arrays)[:2]})
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    png = tmp_path / "p.png"
    assert (
        cli.main(
            [
                "plot",
                str(tmp_path / "u.npz"),
                "--labels",
                str(tmp_path / "labels.json"),
                "--id",
                "dev001",
                "--frame-shift",
                "0.02",
                "--top",
                "12",
                "-o",
                str(png),
            ]
        )
        == 0
    )
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 600 and height > 300
    assert (
        cli.main(
            [
                "plot",
                str(tmp_path / "u.npz"),
                "--labels",
                str(tmp_path / "labels.json"),
                "--id",
                "nope",
            ]
        )
        == cli.EXIT_USAGE
    )


def viterbi_ref(lp: np.ndarray, target: list[int], blank: int = 0) -> float:
    """Best-path log-probability of a CTC target (NumPy over the extended label sequence)."""
    ext = [blank]
    for t in target:
        ext += [t, blank]
    S, T = len(ext), lp.shape[0]
    lp = lp.astype(np.float64)
    a = np.full(S, -np.inf)
    a[0] = lp[0, ext[0]]
    if S > 1:
        a[1] = lp[0, ext[1]]
    for t in range(1, T):
        prev = a.copy()
        for s in range(S):
            best = prev[s]
            if s >= 1:
                best = max(best, prev[s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                best = max(best, prev[s - 2])
            a[s] = best + lp[t, ext[s]]
    return float(max(a[-1], a[-2]) if S > 1 else a[-1])


def test_align_jsonl_and_ctm(tmp_path, demo):
    arrays, refs, labels = demo
    ids = list(arrays)[:3]
    np.savez(tmp_path / "u.npz", **{i: arrays[i] for i in ids})
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    # the third utterance gets a transcript far too long for its frames
    texts = {ids[0]: refs[ids[0]], ids[1]: refs[ids[1]], ids[2]: "abab" * 200}
    (tmp_path / "t.tsv").write_text("".join(f"{i}\t{t}\n" for i, t in texts.items()))
    common = [
        "align",
        tmp_path / "u.npz",
        "--labels",
        tmp_path / "labels.json",
        "--transcripts",
        tmp_path / "t.tsv",
        "--frame-shift",
        "0.02",
    ]
    r = run_cli(*common, "-o", tmp_path / "a.jsonl")
    assert r.returncode == 3 and f"skipping {tmp_path / 'u.npz'}[{ids[2]}]" in r.stderr
    recs = read_jsonl(tmp_path / "a.jsonl")
    assert [x["id"] for x in recs] == ids[:2]
    for rec in recs:
        lp = arrays[rec["id"]].astype(np.float32)
        target = [labels.index(c) for c in texts[rec["id"]]]
        assert rec["text"] == texts[rec["id"]]
        assert [labels.index(t["token"]) for t in rec["tokens"]] == target
        assert rec["log_prob"] == pytest.approx(viterbi_ref(lp, target), abs=1e-3)
        prev = 0
        for t in rec["tokens"]:
            assert prev <= t["start_frame"] < t["end_frame"] <= lp.shape[0]
            assert 0 < t["score"] <= 1
            prev = t["end_frame"]
        assert [w["word"] for w in rec["words"]] == texts[rec["id"]].split()
    r = run_cli(*common, "--format", "ctm", "-o", tmp_path / "a.ctm")
    ctm = [x.split() for x in (tmp_path / "a.ctm").read_text().splitlines()]
    words = [w for rec in recs for w in rec["words"]]
    assert len(ctm) == len(words)
    for row, w in zip(ctm, words, strict=True):
        assert row[1] == "1" and row[4] == w["word"]
        assert float(row[2]) == pytest.approx(w["start"], abs=1e-3)
        assert float(row[3]) == pytest.approx(w["end"] - w["start"], abs=1e-3)


def test_decode_beam_nbest_matches_the_api(tmp_path, demo):
    """The CLI writes what the Python API returns: beam search n-best lists."""
    arrays, refs, labels = demo
    ids = list(arrays)[:3]
    np.savez(tmp_path / "u.npz", **{i: arrays[i] for i in ids})
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    lps = [arrays[i].astype(np.float32) for i in ids]
    common = [
        "decode",
        tmp_path / "u.npz",
        "--labels",
        tmp_path / "labels.json",
        "--beam-width",
        "16",
        "--threads",
        "2",
    ]

    r = run_cli(*common, "--nbest", "3", "-o", tmp_path / "b.jsonl")
    assert r.returncode == 0, r.stderr
    pad = np.zeros((3, max(a.shape[0] for a in lps), len(labels)), np.float32)
    for n, a in enumerate(lps):
        pad[n, : a.shape[0]] = a
    api = fastctc.beam_search_batch(
        pad,
        [a.shape[0] for a in lps],
        beam_width=16,
        top_paths=3,
        beam_prune_logp=-10.0,
        token_min_logp=-5.0,
    )
    for rec, hyps in zip(read_jsonl(tmp_path / "b.jsonl"), api, strict=True):
        texts = [" ".join("".join(labels[t] for t in h.tokens).split()) for h in hyps]
        assert [x["text"] for x in rec["nbest"]] == texts and rec["text"] == texts[0]
        scores = [x["score"] for x in rec["nbest"]]
        assert scores == pytest.approx([h.log_prob for h in hyps], abs=1e-3)
        assert scores == sorted(scores, reverse=True) and scores[0] <= 0


def test_decode_lm_hotwords_match_the_api(tmp_path, demo):
    """With --lm and --hotwords the CLI writes what build_ctcdecoder's decoder returns."""
    arrays, refs, labels = demo
    ids = list(arrays)[:3]
    np.savez(tmp_path / "u.npz", **{i: arrays[i] for i in ids})
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    lps = [arrays[i].astype(np.float32) for i in ids]
    common = [
        "decode",
        tmp_path / "u.npz",
        "--labels",
        tmp_path / "labels.json",
        "--beam-width",
        "16",
        "--threads",
        "2",
    ]
    hot = ["van gogh", "jewels"]
    r = run_cli(
        *common,
        "--lm",
        "default",
        "--alpha",
        "0.5",
        "--beta",
        "1.0",
        "--nbest",
        "2",
        "--hotwords",
        hot[0],
        "--hotwords",
        hot[1],
        "-o",
        tmp_path / "lm.jsonl",
    )
    assert r.returncode == 0, r.stderr
    uni = fastctc.data.default_lm().unigrams
    dec = fastctc.build_ctcdecoder(
        labels, str(fastctc.data.default_lm().path), unigrams=uni, alpha=0.5, beta=1.0
    )
    api = dec.decode_beams_batch(None, lps, beam_width=16, hotwords=hot)
    for rec, beams in zip(read_jsonl(tmp_path / "lm.jsonl"), api, strict=True):
        assert rec["text"] == beams[0].text
        assert rec["lm_score"] == pytest.approx(beams[0].lm_score, abs=1e-3)
        assert rec["logit_score"] == pytest.approx(beams[0].logit_score, abs=1e-3)
        assert [x["text"] for x in rec["nbest"]] == [b.text for b in beams[:2]]
        assert [(w["word"], w["start_frame"], w["end_frame"]) for w in rec["words"]] == [
            (w, s, e) for w, (s, e) in beams[0].text_frames
        ]
        conf = [w["confidence"] for w in rec["words"]]
        assert conf == pytest.approx(beams[0].word_confidences, abs=1e-4)
        assert all(0 <= c <= 1 for c in conf)


@heavy
def test_interrupted_run_resumes(tmp_path, demo):
    """SIGINT mid-run: exit 130, only complete lines kept; --resume finishes the rest."""
    import signal
    import time

    arrays, refs, labels = demo
    src = list(arrays.values())
    n = 240
    np.savez(tmp_path / "u.npz", **{f"u{i:03d}": src[i % len(src)] for i in range(n)})
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    out = tmp_path / "o.jsonl"
    argv = [
        sys.executable,
        "-m",
        "fastctc",
        "decode",
        tmp_path / "u.npz",
        "--labels",
        tmp_path / "labels.json",
        "--beam-width",
        "64",
        "--threads",
        "1",
        "--batch-size",
        "4",
        "-o",
        out,
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        list(map(str, argv)),
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 8:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "rerun with --resume" in err
    first = read_jsonl(out)  # every line complete and valid
    assert 8 <= len(first) < n
    r = run_cli(
        "decode",
        tmp_path / "u.npz",
        "--labels",
        tmp_path / "labels.json",
        "--beam-width",
        "64",
        "--batch-size",
        "4",
        "--resume",
        "-o",
        out,
    )
    assert r.returncode == 0, r.stderr
    assert f"{len(first)} already done (--resume)" in r.stderr
    recs = read_jsonl(out)
    assert [x["id"] for x in recs] == [f"u{i:03d}" for i in range(n)]
    assert recs[: len(first)] == first


def test_progress_bar_only_on_a_terminal(tmp_path, demo):
    import fcntl
    import pty
    import struct
    import termios

    arrays, refs, labels = demo
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    argv = [
        sys.executable,
        "-m",
        "fastctc",
        "decode",
        str(fastctc.data.DATA_DIR / "demo.npz"),
        "--labels",
        str(tmp_path / "labels.json"),
        "--decoder",
        "greedy",
        "--batch-size",
        "4",
        "-o",
        str(tmp_path / "o.jsonl"),
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=slave, stdout=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the terminal closes when the process exits
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    tty_err = b"".join(chunks).decode("utf-8", "replace")
    assert f"/{len(arrays)} [" in tty_err and "decode:" in tty_err  # tqdm's bar
    r = run_cli(*argv[3:])  # stderr is a pipe: the summary only
    assert r.returncode == 0
    assert "/24" not in r.stderr and r.stderr.startswith("fastctc decode: 24 utterances")


@pytest.mark.parametrize(
    "extra",
    [
        ["--decoder", "beam", "--nbest", "2"],
        ["--lm", "default", "--hotwords", "people", "--nbest", "3", "--threads", "2"],
    ],
    ids=["beam", "beam+lm"],
)
def test_stream_chunk_writes_the_offline_output(tmp_path, corpus, extra):
    """--stream-chunk feeds each utterance to a stream in chunks: the records are those of
    offline decoding, whatever the chunk size."""
    d, ids, arrays, refs, labels = corpus
    outs = []
    for chunk in ([], ["--stream-chunk", "7"], ["--stream-chunk", "1"]):
        out = tmp_path / f"out{len(outs)}.jsonl"
        r = run_cli(
            "decode",
            d,
            "--labels",
            tmp_path / "labels.json",
            "--batch-size",
            "4",
            *extra,
            *chunk,
            "-o",
            out,
        )
        assert r.returncode == 0, r.stderr
        outs.append(read_jsonl(out))
    assert len(outs[0]) == len(ids)
    assert outs[1] == outs[0]
    assert outs[2] == outs[0]


def test_stream_chunk_needs_a_beam_decoder(tmp_path, corpus):
    d, *_ = corpus
    r = run_cli(
        "decode",
        d,
        "--labels",
        tmp_path / "labels.json",
        "--decoder",
        "greedy",
        "--stream-chunk",
        "5",
    )
    assert r.returncode != 0 and "--stream-chunk needs --decoder beam" in r.stderr
