"""The LM decoder without the ``kenlm`` package.

Each check runs in a subprocess where ``import kenlm`` fails (a ``sitecustomize`` on
``PYTHONPATH`` puts a blocker on ``sys.meta_path``), even when kenlm is installed here. The
same decoding code then runs in this process, with kenlm where it is installed, and the two
must agree exactly: texts, word frames, scores, the LM adapter's scores. pyctcdecode, where
installed, gives the same texts. Models: the bundled KenLM trie binary and a small ARPA model
written by the test (plain and gzipped); files that only KenLM reads must fail with an error
that names the file and the install command.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastctc

pytestmark = pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT") == "1",
    reason="too slow with NUMBA_DISABLE_JIT=1 (whole-utterance LM decoding in subprocesses)",
)

ROOT = Path(__file__).resolve().parents[1]
KENLM_HINT = re.escape('pip install "fastctc[kenlm]"')

BLOCKER = '''\
import sys


class _NoKenLM:
    """Makes ``import kenlm`` fail as if the package were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name == "kenlm" or name.startswith("kenlm."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoKenLM())
'''

#: Decodes with each model and records everything that must not depend on kenlm; run in a
#: subprocess without kenlm and in this process (``run(models, out_dir)`` -> JSON-able dict).
WORKER = r"""
import json
import os
import sys

import fastctc
from fastctc.decoder import BeamSearchDecoderCTC
from fastctc.lm import LanguageModel, kenlm_installed
from fastctc.ngram import NgramState


def beams_of(beams):
    return [[b.text, b.text_frames, b.logit_score, b.lm_score] for b in beams]


def run(models, out_dir):
    demo = fastctc.data.demo()
    lps = demo.log_probs
    res = {"kenlm_installed": kenlm_installed()}
    for name, (path, unigrams) in models.items():
        dec = fastctc.build_ctcdecoder(demo.labels, kenlm_model_path=path, unigrams=unigrams,
                                       alpha=0.6, beta=1.2)
        lm = dec.language_model
        r = res[name] = {"backend": lm.backend, "order": lm.order, "unigrams": len(lm.unigrams)}
        r["beams"] = [beams_of(dec.decode_beams(lp)) for lp in lps]
        r["pruned"] = [beams_of(dec.decode_beams(lp, beam_width=16, prune_history=True,
                                                 hotwords=["van gogh", "chivas"]))
                       for lp in lps[:6]]
        r["batch"] = dec.decode_batch(None, lps, num_threads=2)
        r["beams_batch"] = [[[b.text, b.text_frames, b.logit_score, b.lm_score] for b in bs]
                            for bs in dec.decode_beams_batch(None, lps[:4], beam_width=16)]
        last = dec.decode_beams(lps[1])[0]
        state = last.last_lm_state
        r["last_words"] = [w if w in lm.kenlm_model else "<unk>" for w in last.text.split()]
        r["last_state"] = list(state.words) if isinstance(state, NgramState) else None
        r["from_state"] = [beams_of(dec.decode_beams(lp, beam_width=16, lm_start_state=state))
                           for lp in lps[:3]]
        st, scores = lm.get_start_state(), []
        for w in ["the", "house", "zzqx", "of", "<unk>", "</s>", "the"]:
            s, st = lm.score(st, w)
            scores.append(s)
        scores.append(lm.score(st, "end", is_last_word=True)[0])
        r["scores"] = scores
        r["partial"] = [lm.score_partial_token(p) for p in ["th", "zzq", "housekeeping"]]
        model = lm.kenlm_model
        r["model_score"] = [model.score("the house of the people"),
                            model.score("zzqx the", bos=False, eos=False)]
        r["contains"] = [w in model for w in ["the", "zzqx", "<unk>", "<s>", "</s>"]]
        r["filtered"] = sorted(LanguageModel(path, ["the", "zzqx"]).unigrams)
        d = os.path.join(out_dir, name)
        os.makedirs(d)
        dec.save_to_dir(d)
        back = BeamSearchDecoderCTC.load_from_dir(d)
        r["loaded"] = [back.language_model.backend, beams_of(back.decode_beams(lps[0]))]
    return res


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(json.dumps(run(json.load(f), sys.argv[2])))
"""

#: Files only KenLM reads, and a start state of the wrong kind: the messages.
ERRORS = r"""
import json
import sys

import fastctc

labels = fastctc.data.demo().labels
out = {}
for name, path in json.loads(sys.argv[1]).items():
    try:
        fastctc.build_ctcdecoder(labels, kenlm_model_path=path)
    except Exception as err:  # noqa: BLE001 - recorded for the test
        out[name] = [type(err).__name__, str(err)]
    else:
        out[name] = None
lm = fastctc.data.default_lm()
dec = fastctc.build_ctcdecoder(lm.labels, kenlm_model_path=lm.path, unigrams=lm.unigrams)
try:
    dec.decode_beams(fastctc.data.demo().log_probs[0], lm_start_state=("the",))
except TypeError as err:
    out["start_state"] = ["TypeError", str(err)]
print(json.dumps(out))
"""


# ---------------------------------------------------------------------------- helpers


def small_arpa(sentences: list[str], seed: int = 0) -> str:
    """A closed word 3-gram back-off model of ``sentences`` (every n-gram's context and
    suffix are n-grams), with arbitrary but valid probabilities and back-offs."""
    rnd = random.Random(seed)
    grams: dict[int, set[tuple[str, ...]]] = {
        1: {("<unk>",), ("<s>",), ("</s>",)},
        2: set(),
        3: set(),
    }
    for s in sentences:
        words = ["<s>", *s.split(), "</s>"]
        for n in (1, 2, 3):
            grams[n].update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    contexts = {g[:-1] for n in (2, 3) for g in grams[n]}
    lines = ["\\data\\", *(f"ngram {n}={len(grams[n])}" for n in (1, 2, 3)), ""]
    for n in (1, 2, 3):
        lines.append(f"\\{n}-grams:")
        for g in sorted(grams[n]):
            prob = -99.0 if g == ("<s>",) else round(rnd.uniform(-3.0, -0.05), 4)
            line = f"{prob}\t{' '.join(g)}"
            if n < 3 and g in contexts:
                line += f"\t{round(rnd.uniform(-0.9, 0.0), 4)}"
            lines.append(line)
        lines.append("")
    lines.append("\\end\\")
    return "\n".join(lines) + "\n"


def with_gap(arpa: str) -> str:
    """``arpa`` without one bigram that ends a trigram and begins none (SRILM-style pruning:
    KenLM fills such gaps in when it loads the file; fastctc's reader does not)."""
    lines = arpa.split("\n")
    bigrams = [ln.split("\t")[1] for ln in lines if ln.count(" ") == 1 and "\t" in ln]
    trigrams = [ln.split("\t")[1].split() for ln in lines if ln.count(" ") == 2 and "\t" in ln]
    contexts = {" ".join(t[:2]) for t in trigrams}
    gap = next(" ".join(t[1:]) for t in trigrams if " ".join(t[1:]) not in contexts)
    assert gap in bigrams
    out = [ln for ln in lines if not ("\t" in ln and ln.split("\t")[1] == gap)]
    return "\n".join(
        f"ngram 2={len(bigrams) - 1}" if ln.startswith("ngram 2=") else ln for ln in out
    )


def hash_table_header() -> bytes:
    """The start of a KenLM hash-table ("probing") binary of a 3-gram, as build_binary
    writes it on x86-64 (the part that identifies the model type)."""
    return (
        b"mmap lm http://kheafield.com/code format version 5\n".ljust(56, b"\0")
        + np.array([0.0, 1.0, -0.5], dtype="<f4").tobytes()
        + np.array([1, 0xFFFFFFFF, 0], dtype="<u4").tobytes()
        + np.array([1], dtype="<u8").tobytes()
        + bytes([3, 0, 0, 0])  # order
        + np.array([1.5], dtype="<f4").tobytes()  # hash-table multiplier
        + np.array([0, 1, 0], dtype="<u4").tobytes()  # probing; words stored; version
        + np.array([10, 20, 30], dtype="<u8").tobytes()  # n-gram counts
        + bytes(64)
    )


def _env(tmp: Path) -> dict[str, str]:
    """Environment of a subprocess in which ``import kenlm`` fails."""
    site = tmp / "no_kenlm_site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(site), str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    return env


def run_without_kenlm(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    """``python *args`` in ``tmp`` with kenlm blocked."""
    return subprocess.run(
        [sys.executable, *args], env=_env(tmp), cwd=tmp, capture_output=True, text=True, timeout=600
    )


def _script(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def _checked(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _kenlm_module():
    try:
        import kenlm
    except ImportError:
        return None
    return kenlm


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("no_kenlm")


@pytest.fixture(scope="module")
def models(work) -> dict[str, tuple[str, list[str] | None]]:
    """name -> (model path, unigrams): the bundled trie and a small ARPA, plain and gzipped."""
    demo = fastctc.data.demo()
    text = small_arpa(demo.transcripts[::2])  # half of the sentences: the others have OOVs
    arpa = work / "small.arpa"
    arpa.write_text(text)
    gz = work / "small.arpa.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    lm = fastctc.data.default_lm()
    return {
        "trie": (str(lm.path), lm.unigrams),
        "arpa": (str(arpa), None),  # unigrams read from the ARPA file, as pyctcdecode
        "arpa_gz": (str(gz), sorted({w for s in demo.transcripts[::2] for w in s.split()})),
    }


@pytest.fixture(scope="module")
def without(work, models) -> dict:
    """The worker's results in a subprocess without kenlm."""
    out = work / "without"
    out.mkdir()
    script = _script(work, "worker.py", WORKER)
    spec = _script(work, "models.json", json.dumps(models))
    return json.loads(_checked(run_without_kenlm(work, script, spec, str(out))))


@pytest.fixture(scope="module")
def here(work, models) -> dict:
    """The worker's results in this process (with kenlm when it is installed)."""
    out = work / "here"
    out.mkdir()
    namespace: dict = {"__name__": "no_kenlm_worker"}
    exec(compile(WORKER, "worker.py", "exec"), namespace)
    return json.loads(json.dumps(namespace["run"](models, str(out))))


# ---------------------------------------------------------------------------- decoding


def test_kenlm_is_blocked(work):
    code = "import fastctc.lm; import kenlm"
    proc = run_without_kenlm(work, "-c", code)
    assert proc.returncode != 0 and "No module named 'kenlm'" in proc.stderr


@pytest.mark.parametrize("name", ["trie", "arpa", "arpa_gz"])
def test_models_decode_without_kenlm(without, name):
    r = without[name]
    assert without["kenlm_installed"] is False
    assert r["backend"] == "fastctc" and r["loaded"][0] == "fastctc"
    assert r["order"] == (4 if name == "trie" else 3)
    demo = fastctc.data.demo()
    best = [b[0][0] for b in r["beams"]]
    assert len(best) == len(demo.ids) and all(best)
    if name == "trie":  # the real model halves the greedy WER (the small one is random)
        greedy = [
            " ".join("".join(demo.labels[t] for t in fastctc.greedy_decode(lp).tokens).split())
            for lp in demo.log_probs
        ]
        assert fastctc.wer(demo.transcripts, best) < 0.6 * fastctc.wer(demo.transcripts, greedy)
    # the beams' states are fastctc's: the last order - 1 words, <s> first at the start
    words = ["<s>", *r["last_words"]][-(r["order"] - 1) :]
    assert r["last_state"] == words
    assert r["loaded"][1] == r["beams"][0]  # save_to_dir / load_from_dir
    assert r["contains"] == [True, False, False, True, True]
    assert r["filtered"] == ["the"]


@pytest.mark.reference
@pytest.mark.parametrize("name", ["trie", "arpa", "arpa_gz"])
def test_same_results_as_kenlm(here, without, name):
    if not here["kenlm_installed"]:
        pytest.skip("kenlm is not installed here: nothing to compare the subprocess with")
    ours, ref = dict(without[name]), dict(here[name])
    assert (ours.pop("backend"), ref.pop("backend")) == ("fastctc", "kenlm")
    assert ref.pop("last_state") is None and ours.pop("last_state") is not None
    assert ref["loaded"][0] == "kenlm"
    ours["loaded"][0] = ref["loaded"][0]
    for key in ref:
        assert ours[key] == ref[key], key


@pytest.mark.reference
@pytest.mark.parametrize("name", ["trie", "arpa"])
def test_same_texts_as_pyctcdecode(without, models, name):
    pyctcdecode = pytest.importorskip("pyctcdecode")
    if _kenlm_module() is None:
        pytest.skip("pyctcdecode needs kenlm")
    demo = fastctc.data.demo()
    path, unigrams = models[name]
    ref = pyctcdecode.build_ctcdecoder(
        demo.labels, kenlm_model_path=path, unigrams=unigrams, alpha=0.6, beta=1.2
    )
    for i, lp in enumerate(demo.log_probs[:8]):
        r = ref.decode_beams(lp)
        o = without[name]["beams"][i]
        assert [b[0] for b in o] == [b[0] for b in r]
        assert [b[3] for b in o] == pytest.approx([b[4] for b in r], rel=1e-5, abs=1e-3)


def test_start_state_round_trip(without):
    """A beam's NgramState passed back as lm_start_state conditions what follows (that it
    gives KenLM's beams is checked by test_same_results_as_kenlm)."""
    r = without["trie"]
    assert all(r["from_state"])
    assert r["from_state"][0][0][3] != r["beams"][0][0][3]


# ---------------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def errors(work) -> dict:
    hash_bin = work / "hash.bin"
    hash_bin.write_bytes(hash_table_header())
    gap = work / "gap.arpa"
    gap.write_text(with_gap(small_arpa(fastctc.data.demo().transcripts)))
    text = work / "notes.arpa"
    text.write_text("these are not n-grams\n")
    files = {
        "hash": str(hash_bin),
        "gap": str(gap),
        "text": str(text),
        "missing": str(work / "nowhere.arpa"),
    }
    script = _script(work, "errors.py", ERRORS)
    return json.loads(_checked(run_without_kenlm(work, script, json.dumps(files))))


@pytest.mark.parametrize(("name", "what"), [("hash", "hash-table binary"), ("gap", "3-grams lack")])
def test_kenlm_only_models_name_the_file_and_the_fix(errors, work, name, what):
    kind, msg = errors[name]
    assert kind == "ImportError"
    assert "kenlm_model_path" in msg and what in msg
    assert str(work) in msg
    assert re.search(KENLM_HINT, msg)


def test_other_files_are_not_blamed_on_kenlm(errors):
    assert errors["text"][0] == "ValueError" and "pip install" not in errors["text"][1]
    assert "neither an ARPA file" in errors["text"][1]
    assert errors["missing"][0] == "FileNotFoundError" and "nowhere.arpa" in errors["missing"][1]


def test_start_state_of_another_kind(errors):
    kind, msg = errors["start_state"]
    assert kind == "TypeError" and "lm_start_state must be a fastctc.ngram.NgramState" in msg


@pytest.mark.reference
def test_gap_model_is_one_kenlm_reads(work):
    kenlm = _kenlm_module()
    if kenlm is None:
        pytest.skip("kenlm is not installed")
    gap = work / "gap_ref.arpa"
    gap.write_text(with_gap(small_arpa(fastctc.data.demo().transcripts)))
    assert kenlm.Model(str(gap)).order == 3
    dec = fastctc.build_ctcdecoder(fastctc.data.demo().labels, kenlm_model_path=str(gap))
    assert dec.language_model.backend == "kenlm" and dec.language_model.ngram_tables is None


def _build_binary() -> str | None:
    """KenLM's build_binary: $KENLM_BIN, build/kenlm/bin (lm/build_kenlm.sh) or PATH."""
    for folder in (os.environ.get("KENLM_BIN"), str(ROOT / "build" / "kenlm" / "bin")):
        if folder and os.access(os.path.join(folder, "build_binary"), os.X_OK):
            return os.path.join(folder, "build_binary")
    return shutil.which("build_binary")


def test_real_hash_table_binary(work, models):
    tool = _build_binary()
    if tool is None:
        pytest.skip(
            "KenLM's build_binary not found (PATH, build/kenlm/bin or $KENLM_BIN); "
            "lm/build_kenlm.sh builds it"
        )
    out = work / "probing.bin"
    subprocess.run([tool, models["arpa"][0], str(out)], check=True, capture_output=True)
    script = _script(work, "errors_real.py", ERRORS)
    res = json.loads(_checked(run_without_kenlm(work, script, json.dumps({"probing": str(out)}))))
    kind, msg = res["probing"]
    assert kind == "ImportError" and "hash-table binary" in msg and re.search(KENLM_HINT, msg)


# ---------------------------------------------------------------------------- command line


def test_demo_shows_beam_lm(work):
    out = _checked(run_without_kenlm(work, "-m", "fastctc", "demo", "--show", "1"))
    assert "read by fastctc, without kenlm" in out
    row = re.compile(r"^\s+(greedy|beam \(\d+\)|beam \+ LM)\s+(\d+\.\d)%", re.M)
    rows = {m.group(1): float(m.group(2)) for m in row.finditer(out)}
    assert set(rows) == {"greedy", "beam (64)", "beam + LM"}, out
    assert rows["beam + LM"] < rows["greedy"]
    assert "unavailable" not in out


def test_cli_decodes_with_a_gzipped_arpa(work, models, without):
    demo = fastctc.data.demo()
    labels = work / "labels.json"
    labels.write_text(json.dumps(demo.labels))
    unigrams = work / "unigrams.txt"
    unigrams.write_text("\n".join(models["arpa_gz"][1]))
    out = work / "hyps.jsonl"
    npz = str(fastctc.data.DATA_DIR / "demo.npz")
    args = [
        "--lm",
        models["arpa_gz"][0],
        "--unigrams",
        str(unigrams),
        "--alpha",
        "0.6",
        "--beta",
        "1.2",
        "-q",
        "-o",
        str(out),
    ]
    _checked(
        run_without_kenlm(work, "-m", "fastctc", "decode", npz, "--labels", str(labels), *args)
    )
    texts = {r["id"]: r["text"] for r in map(json.loads, out.read_text().splitlines())}
    assert [texts[i] for i in demo.ids] == [b[0][0] for b in without["arpa_gz"]["beams"]]


def test_cli_names_the_kenlm_only_model(work):
    demo = fastctc.data.demo()
    labels = work / "labels_err.json"
    labels.write_text(json.dumps(demo.labels))
    hash_bin = work / "hash_cli.bin"
    hash_bin.write_bytes(hash_table_header())
    npz = str(fastctc.data.DATA_DIR / "demo.npz")
    proc = run_without_kenlm(
        work, "-m", "fastctc", "decode", npz, "--labels", str(labels), "--lm", str(hash_bin), "-q"
    )
    assert proc.returncode == 2, proc.stderr
    assert "hash_cli.bin" in proc.stderr and re.search(KENLM_HINT, proc.stderr)


def test_a_folder_named_kenlm_is_not_kenlm(monkeypatch):
    """A ``kenlm`` without ``Model`` (a folder of that name imported as a namespace package)
    counts as missing: models load with fastctc's reader."""
    import types

    from fastctc.lm import import_kenlm, kenlm_installed

    fake = types.ModuleType("kenlm")
    fake.__path__ = ["/somewhere/kenlm"]
    monkeypatch.setitem(sys.modules, "kenlm", fake)
    assert not kenlm_installed()
    with pytest.raises(ImportError, match=r"somewhere/kenlm.*is not KenLM"):
        import_kenlm()
    lm = fastctc.data.default_lm()
    dec = fastctc.build_ctcdecoder(lm.labels, kenlm_model_path=lm.path, unigrams=lm.unigrams)
    assert dec.language_model.backend == "fastctc"
