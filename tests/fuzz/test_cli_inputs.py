"""The command line against hostile inputs: crafted archive member names, outputs that are
inputs, decoders that return nothing, and archives whose headers promise huge matrices.

Runs in-process through ``cli.main``; most tests swap the decoder for a stub (the command
line's handling is under test, not decoding), so no test compiles a kernel but the plot test.
"""

from __future__ import annotations

import json
import os
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastctc import cli
from fastctc import io as fio

LABELS = ["", " ", "a", "b"]
HOSTILE = "\t\n\r\\/. \u00e9\u2028\x85\x0b\x1f\"'{}:"


def matrix(T: int) -> np.ndarray:
    """A valid (T, 4) float32 log-probability matrix."""
    return np.log(np.full((T, len(LABELS)), 1 / len(LABELS), dtype=np.float32))


def write_npz(path: Path, members: dict[str, np.ndarray], compress: bool = False) -> Path:
    """An archive holding exactly these member names (``.npy`` appended), as np.savez would."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, arr in members.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)
    return path


def text_of(T: int) -> str:
    """The stub decoder's transcript of a T-frame utterance: hostile characters included."""
    return f"w{T}\tx\\ty\nz\u2028\r"


def stub_decoder(empty: frozenset[int] = frozenset(), boom: frozenset[int] = frozenset()):
    """Decodes a T-frame matrix to ``text_of(T)``; no hypothesis for T in ``empty``, an
    exception for T in ``boom``."""

    def run(arrays: list[np.ndarray]) -> list[list[cli.Result]]:
        out = []
        for a in arrays:
            T = a.shape[0]
            if T in boom:
                raise RuntimeError(f"decoder broke on {T} frames")
            out.append([] if T in empty else [cli.Result(text_of(T), [], -1.0, -1.0, None)])
        return out

    return run


@pytest.fixture()
def labels_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "labels.json"
    path.write_text(json.dumps(LABELS))
    return path


@pytest.fixture()
def stub(monkeypatch):
    def use(**kw):
        monkeypatch.setattr(
            cli, "make_decoder", lambda args, labels, blank: ("stub", stub_decoder(**kw))
        )

    use()
    return use


def count_records(path: Path, fmt: str) -> int:
    return path.read_bytes().count(b"\n")


# ---------------------------------------------------------------- 1. plot's file names


names = st.text(
    alphabet=st.one_of(st.sampled_from(HOSTILE + "\x00"), st.characters()), max_size=300
)


@given(names)
@settings(max_examples=300, deadline=None)
def test_safe_file_name_stays_in_its_folder(uid):
    name = cli.safe_file_name(uid)
    assert name and len(name.encode("utf-8")) <= 200
    assert Path(name).name == name and os.sep not in name and "/" not in name
    assert not name.startswith(".") and name not in (".", "..")
    assert all(c.isprintable() and not c.isspace() for c in name)


def test_plot_of_crafted_member_names_writes_inside_the_folder(tmp_path, labels_file, monkeypatch):
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    long = "\u00e9" * 150  # 300 bytes of UTF-8: too long for one file name
    members = {"../../x": matrix(5), f"{elsewhere}/y": matrix(6), "..": matrix(7), long: matrix(8)}
    archive = write_npz(tmp_path / "crafted.npz", members)
    monkeypatch.chdir(work)
    cases = [("../../x", "_.._x.png"), (f"{elsewhere}/y", None), ("..", "utterance.png")]
    for uid, png in [*cases, (long, "\u00e9" * 100 + ".png")]:
        argv = ["plot", str(archive), "--labels", str(labels_file), "--id", uid]
        assert cli.main(argv) == cli.EXIT_OK
        if png is not None:
            assert (work / png).is_file()
    written = sorted(p for p in tmp_path.rglob("*.png"))
    assert written and all(p.parent == work for p in written), written
    assert not list(elsewhere.iterdir())


# ---------------------------------------------------------------- 2. TSV escaping, --resume


ids_strategy = st.lists(
    st.text(
        alphabet=st.one_of(
            st.sampled_from(HOSTILE),
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        ),
        max_size=10,
    ),
    min_size=1,
    max_size=6,
    unique=True,
)


@given(ids=ids_strategy, fmt=st.sampled_from(["tsv", "jsonl"]), cut=st.integers(0, 6))
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_resume_writes_every_utterance_exactly_once(tmp_path, labels_file, stub, ids, fmt, cut):
    d = Path(tempfile.mkdtemp(dir=tmp_path))  # one folder per example
    archive = write_npz(d / "in.npz", {uid: matrix(3 + k) for k, uid in enumerate(ids)})
    expected = {uid: text_of(3 + k) for k, uid in enumerate(ids)}
    out = d / f"out.{fmt}"
    argv = ["decode", str(archive), "--labels", str(labels_file), "--format", fmt, "-q"]
    assert cli.main([*argv, "-o", str(out)]) == cli.EXIT_OK
    assert count_records(out, fmt) == len(ids)
    assert fio.read_done(out, fmt)[0] == expected

    # an interruption after `cut` records, halfway through the next one (a TSV file holding
    # only part of a line is refused: nothing in it says it is ours)
    data = out.read_bytes()
    lines = data.split(b"\n")[:-1]
    cut = min(cut, len(lines))
    head = b"".join(line + b"\n" for line in lines[:cut])
    if cut < len(lines) and (cut or fmt == "jsonl"):
        head += lines[cut][: max(1, len(lines[cut]) // 2)]
    out.write_bytes(head)
    assert cli.main([*argv, "-o", str(out), "--resume"]) == cli.EXIT_OK
    assert count_records(out, fmt) == len(ids)
    assert fio.read_done(out, fmt)[0] == expected


@pytest.mark.parametrize("fmt", ["tsv", "jsonl"])
def test_forged_record_does_not_hide_a_real_utterance(tmp_path, labels_file, stub, fmt):
    forged = "f\t\t\nreal"  # unescaped, a TSV line "f", then a record for id "real"
    archive = write_npz(tmp_path / "in.npz", {forged: matrix(3), "real": matrix(4)})
    out = tmp_path / f"out.{fmt}"
    argv = ["decode", str(archive), "--labels", str(labels_file), "--format", fmt, "-q"]
    assert cli.main([*argv, "-o", str(out)]) == cli.EXIT_OK
    first = out.read_bytes().split(b"\n")[0] + b"\n"
    assert first.count(b"\n") == 1 and (fmt == "jsonl" or first.count(b"\t") == 2)
    out.write_bytes(first)  # interrupted after the forged id's record
    assert cli.main([*argv, "-o", str(out), "--resume"]) == cli.EXIT_OK
    assert fio.read_done(out, fmt)[0] == {forged: text_of(3), "real": text_of(4)}
    if fmt == "tsv":
        rows = out.read_text(encoding="utf-8").split("\n")
        assert rows[0].split("\t")[0] == "f\\t\\t\\nreal" and rows[1].startswith("real\t")


# ---------------------------------------------------------------- 3. outputs that are inputs


def test_output_that_is_an_input_is_refused(tmp_path, labels_file, stub, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    archive = write_npz(folder / "data.npz", {"u": matrix(3)})
    np.save(folder / "one.npy", matrix(4))
    (tmp_path / "t.tsv").write_text("u\ta\n")
    os.symlink(archive, tmp_path / "link.npz")
    os.link(archive, tmp_path / "hard.npz")
    before = {p: p.read_bytes() for p in (archive, folder / "one.npy", labels_file)}
    lab = ["--labels", str(labels_file)]
    cases = [
        ["decode", str(archive), *lab, "-o", str(archive)],
        ["decode", str(archive), *lab, "-o", str(archive), "--resume"],
        ["decode", str(archive), *lab, "-o", str(tmp_path / "link.npz")],
        ["decode", str(tmp_path / "hard.npz"), *lab, "-o", str(archive), "--format", "tsv"],
        ["decode", str(folder), *lab, "-o", str(folder / "one.npy")],
        ["decode", str(archive), *lab, "-o", str(labels_file)],
        ["align", str(folder), *lab, "--transcripts", str(tmp_path / "t.tsv"), "-o", str(archive)],
        ["plot", str(archive), *lab, "-o", str(archive)],
    ]
    for argv in cases:
        assert cli.main(argv) == cli.EXIT_USAGE, argv
        assert "would destroy it" in capsys.readouterr().err, argv
    assert {p: p.read_bytes() for p in before} == before


def test_resume_refuses_a_file_that_is_not_its_output(tmp_path, labels_file, stub, capsys):
    archive = write_npz(tmp_path / "data.npz", {"u": matrix(3), "v": matrix(4)})
    (tmp_path / "copy.bin").write_bytes(archive.read_bytes())
    (tmp_path / "notes.txt").write_text("remember the milk\nand the bread")
    (tmp_path / "nonl.txt").write_bytes(b"no line break at all, nor a record")
    (tmp_path / "out.jsonl").write_text('{"id": "u", "text": "a"}\n')
    (tmp_path / "out.tsv").write_text("u\ta\t-1.0\n")
    lab = ["--labels", str(labels_file), "--resume", "-q"]
    for name, fmt in [
        ("copy.bin", "jsonl"),
        ("copy.bin", "tsv"),
        ("notes.txt", "jsonl"),
        ("notes.txt", "tsv"),
        ("nonl.txt", "jsonl"),
        ("nonl.txt", "tsv"),
        ("out.jsonl", "tsv"),
        ("out.tsv", "jsonl"),
    ]:
        target = tmp_path / name
        before = target.read_bytes()
        argv = ["decode", str(archive), *lab, "--format", fmt, "-o", str(target)]
        assert cli.main(argv) == cli.EXIT_USAGE, (name, fmt)
        assert "is not a fastctc" in capsys.readouterr().err
        assert target.read_bytes() == before, (name, fmt)
    # its own outputs are resumed
    for fmt in ("jsonl", "tsv"):
        argv = ["decode", str(archive), *lab, "--format", fmt, "-o", str(tmp_path / f"out.{fmt}")]
        assert cli.main(argv) == cli.EXIT_OK
        assert set(fio.read_done(tmp_path / f"out.{fmt}", fmt)[0]) == {"u", "v"}


# ---------------------------------------------------------------- 4. no result, no silence


@pytest.mark.parametrize("fmt", ["tsv", "jsonl"])
def test_utterances_without_a_result_are_reported(tmp_path, labels_file, stub, capsys, fmt):
    ids = [f"u{k}" for k in range(20)]
    archive = write_npz(tmp_path / "in.npz", {uid: matrix(3 + k) for k, uid in enumerate(ids)})
    stub(empty=frozenset({5, 9}), boom=frozenset({12}))  # u2, u6: nothing; u9: raises
    out = tmp_path / f"out.{fmt}"
    argv = ["decode", str(archive), "--labels", str(labels_file), "--format", fmt]
    assert cli.main([*argv, "-o", str(out), "--batch-size", "7"]) == cli.EXIT_SKIPPED
    err = capsys.readouterr().err
    assert "'u2': the decoder returned no hypothesis" in err
    assert "'u6': the decoder returned no hypothesis" in err
    assert "'u9': decoding failed: RuntimeError: decoder broke on 12 frames" in err
    assert "3 input(s) skipped" in err
    assert set(fio.read_done(out, fmt)[0]) == set(ids) - {"u2", "u6", "u9"}
    assert count_records(out, fmt) == 17

    assert cli.main([*argv, "-o", str(out), "--strict"]) == cli.EXIT_ERROR
    assert (
        "'u2': the decoder returned no hypothesis; stopping (--strict)" in capsys.readouterr().err
    )


@pytest.mark.parametrize("option", ["--hotword-weight", "--alpha", "--beta"])
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_non_finite_weights_are_usage_errors(tmp_path, labels_file, capsys, option, value):
    argv = ["decode", str(tmp_path / "x.npy"), "--labels", str(labels_file), f"{option}={value}"]
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == cli.EXIT_USAGE
    assert "finite" in capsys.readouterr().err


# ---------------------------------------------------------------- 5. sizes before loading


def huge_member(path: Path, T: int, C: int, data_bytes: int) -> Path:
    """A deflated archive whose header promises (T, C) float32 but holds ``data_bytes`` zeros."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (T, C)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("big.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            fh.write(bytes(data_bytes))
        with zf.open("small.npy", "w") as fh:
            np.lib.format.write_array(fh, matrix(5))
    return path


def test_huge_member_refused_from_its_header(tmp_path, labels_file, stub, capsys):
    T = 150_000_000  # 2.2 GiB as float32, above the default limit of 2 GiB
    archive = huge_member(tmp_path / "bomb.npz", T, len(LABELS), 1 << 20)
    npy = tmp_path / "big_file.npy"
    with open(npy, "wb") as fh:
        header = {"descr": "<f4", "fortran_order": False, "shape": (T, len(LABELS))}
        np.lib.format.write_array_header_1_0(fh, header)
    out = tmp_path / "out.jsonl"
    argv = ["decode", str(archive), str(npy), "--labels", str(labels_file), "-o", str(out)]
    tracemalloc.start()
    try:
        code = cli.main(argv)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == cli.EXIT_SKIPPED
    assert peak < 50e6, peak  # the promised 2.2 GiB are never allocated
    err = capsys.readouterr().err
    assert f"skipping {archive}[big]: shape ({T}, 4) needs 2.24 GiB as float32" in err
    assert f"skipping {npy}: shape ({T}, 4) needs" in err and "--max-bytes" in err
    assert set(fio.read_done(out, "jsonl")[0]) == {"small"}
    assert cli.main([*argv, "--strict"]) == cli.EXIT_ERROR
    assert "(--strict)" in capsys.readouterr().err


def test_max_bytes_limit(tmp_path, labels_file, stub, capsys):
    archive = write_npz(tmp_path / "in.npz", {"short": matrix(10), "long": matrix(1000)}, True)
    out = tmp_path / "out.tsv"
    argv = ["decode", str(archive), "--labels", str(labels_file), "--format", "tsv"]
    assert cli.main([*argv, "-o", str(out), "--max-bytes", "10K"]) == cli.EXIT_SKIPPED
    assert "needs 0.00 GiB as float32" in capsys.readouterr().err
    assert set(fio.read_done(out, "tsv")[0]) == {"short"}
    assert cli.main([*argv, "-o", str(out)]) == cli.EXIT_OK
    assert set(fio.read_done(out, "tsv")[0]) == {"short", "long"}
    with pytest.raises(SystemExit):
        cli.main([*argv, "--max-bytes", "lots"])


def test_wrong_dtype_and_shape_refused_from_the_header(tmp_path, labels_file, stub, capsys):
    members = {
        "ints": np.zeros((3, 4), dtype=np.int64),
        "cube": np.zeros((2, 3, 4), dtype=np.float32),
        "cols": np.zeros((3, 5), dtype=np.float32),
        "fortran": np.asfortranarray(matrix(6)),
        "big_endian": matrix(7).astype(">f8"),
    }
    archive = write_npz(tmp_path / "in.npz", members)
    out = tmp_path / "out.jsonl"
    assert cli.main(["decode", str(archive), "--labels", str(labels_file), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert "dtype int64" in err and "shape (2, 3, 4)" in err and "5 columns" in err
    assert set(fio.read_done(out, "jsonl")[0]) == {"fortran", "big_endian"}


def test_checks_in_blocks_name_the_right_frame():
    T = 600_000  # several blocks of rows at 4 columns
    x = matrix(T)
    bad = x.copy()
    bad[550_123, 1] = np.nan
    with pytest.raises(ValueError, match="frame 550123 contains NaN"):
        fio.to_log_probs(bad, 4, "log-probs")
    bad = x.copy()
    bad[599_999] = -np.inf
    bad[550_000, 0] = -5.0
    with pytest.raises(ValueError, match="frame 599999 gives every label probability zero"):
        fio.to_log_probs(bad, 4, "log-probs")
    bad[599_999] = x[0]
    with pytest.raises(ValueError, match="frame 550000 does not sum to probability 1"):
        fio.to_log_probs(bad, 4, "log-probs")
    logits = np.zeros((T, 4), dtype=np.float32)
    np.testing.assert_allclose(fio.to_log_probs(logits, 4, "logits"), x)
    assert not logits.any()  # the caller's array is left alone


def test_padded_batches_stay_under_the_cap(tmp_path, labels_file, monkeypatch):
    """One long utterance among short ones does not make a batch of copies of its length."""
    lengths = [3, 4, 2000, 5, 6, 7]
    archive = write_npz(tmp_path / "in.npz", {f"u{k}": matrix(T) for k, T in enumerate(lengths)})
    seen: list[list[int]] = []
    inner = stub_decoder()

    def spy(arrays):
        seen.append([a.shape[0] for a in arrays])
        return inner(arrays)

    monkeypatch.setattr(cli, "make_decoder", lambda args, labels, blank: ("spy", spy))
    monkeypatch.setattr(cli, "_BATCH_BYTES", 3 * 2000 * len(LABELS) * 4)
    out = tmp_path / "out.jsonl"
    argv = ["decode", str(archive), "--labels", str(labels_file), "-o", str(out), "-q"]
    assert cli.main(argv) == cli.EXIT_OK
    assert sorted(T for b in seen for T in b) == sorted(lengths)
    assert all(len(b) * max(b) <= 3 * 2000 for b in seen), seen
    assert count_records(out, "jsonl") == len(lengths)


def test_ctm_refuses_ids_it_cannot_hold(tmp_path, labels_file, capsys):
    archive = write_npz(tmp_path / "in.npz", {"a b": matrix(4), "c\u2028d": matrix(4)})
    (tmp_path / "t.tsv").write_text("a b\tab\nc\u2028d\tab\n", encoding="utf-8")
    out = tmp_path / "out.ctm"
    argv = ["align", str(archive), "--labels", str(labels_file), "--transcripts"]
    argv += [str(tmp_path / "t.tsv"), "--format", "ctm", "--frame-shift", "0.02", "-o", str(out)]
    assert cli.main(argv) == cli.EXIT_SKIPPED
    err = capsys.readouterr().err
    assert "id 'a b' is empty or holds white space" in err and "'c\\u2028d'" in err
    assert out.read_text() == ""


def test_file_names_that_are_not_utf8(tmp_path, labels_file, stub):
    folder = tmp_path / "in"
    folder.mkdir()
    with open(os.path.join(os.fsencode(folder), b"utt\xff.npy"), "wb") as fh:
        np.save(fh, matrix(3))
    for fmt in ("jsonl", "tsv"):
        out = tmp_path / f"out.{fmt}"
        argv = ["decode", str(folder), "--labels", str(labels_file), "--format", fmt, "-q"]
        assert cli.main([*argv, "-o", str(out)]) == cli.EXIT_OK
        assert set(fio.read_done(out, fmt)[0]) == {"utt\\xff"}
        assert cli.main([*argv, "-o", str(out), "--resume"]) == cli.EXIT_OK
        assert count_records(out, fmt) == 1
