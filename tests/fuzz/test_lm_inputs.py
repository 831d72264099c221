"""Hostile inputs to the LM decoder and the model readers: NaN, infinite and non-number LM
scores, searches that end without a beam, batches with one bad item, ARPA files that crash
or fool KenLM or exhaust memory, and malformed alphabets, hotwords and directories.

Every case was found by fuzzing; each test here failed (or hung, or crashed) before the fix.
Anything that could crash KenLM runs in a subprocess."""

from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastctc
from fastctc.alphabet import Alphabet
from fastctc.decoder import BeamSearchDecoderCTC
from fastctc.lm import AbstractLanguageModel, LanguageModel, kenlm_installed, load_model
from fastctc.lm.ngram import _read_lines
from fastctc.ngram import MAX_NGRAMS, read_arpa, read_arpa_bytes
from tests.fuzz.sigint import assert_sigint_stops

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["", " ", "a", "b"]
LP = np.log(np.array([[0.1, 0.1, 0.7, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]]))
needs_kenlm = pytest.mark.skipif(not kenlm_installed(), reason="kenlm is not installed")

UNIGRAMS = ["-1.0\t<unk>\t0", "-99\t<s>\t-0.5", "-0.5\t</s>", "-0.3\ta\t-0.2", "-0.4\tb\t-0.1"]
BIGRAMS = ["-0.1\t<s> a", "-0.2\ta b"]


def arpa_text(uni=UNIGRAMS, bi=BIGRAMS, end=True, header=None) -> str:
    """A small bigram ARPA file; ``header`` replaces the count lines."""
    counts = header if header is not None else f"ngram 1={len(uni)}\nngram 2={len(bi)}"
    text = f"\\data\\\n{counts}\n\n\\1-grams:\n" + "".join(u + "\n" for u in uni)
    text += "\n\\2-grams:\n" + "".join(b + "\n" for b in bi) + "\n"
    return text + ("\\end\\\n" if end else "")


def write(tmp_path: Path, text: str, name: str = "m.arpa") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ------------------------------------------------------------------ 1. bad LM scores
class _Looping(RuntimeError):
    pass


class BadLM(AbstractLanguageModel):
    """A custom model whose ``score`` or ``score_partial_token`` returns ``bad``; it counts
    its calls and stops a search that keeps asking (the old hang) with ``_Looping``."""

    def __init__(self, where: str, bad) -> None:
        self.where, self.bad, self.calls = where, bad, 0

    @property
    def order(self) -> int:
        return 2

    def get_start_state(self):
        return 0

    def _tick(self) -> None:
        self.calls += 1
        if self.calls > 5000:
            raise _Looping("the search keeps asking for the same score")

    def score_partial_token(self, partial_token):
        self._tick()
        return self.bad if self.where == "partial" else 0.0

    def score(self, prev_state, word, is_last_word=False):
        self._tick()
        return (self.bad if self.where == "score" else -1.0), 0


BAD_VALUES = [
    (float("nan"), ValueError, "nan"),
    (math.inf, ValueError, "inf"),
    (np.float32("nan"), ValueError, "nan"),
    ("x", TypeError, "str 'x'"),
    (None, TypeError, "NoneType"),
]


@pytest.mark.parametrize("where", ["score", "partial"])
@pytest.mark.parametrize(("bad", "kind", "shown"), BAD_VALUES)
@pytest.mark.parametrize("threads", [1, 2])
def test_custom_model_bad_score_raises_at_once(where, bad, kind, shown, threads):
    lm = BadLM(where, bad)
    dec = BeamSearchDecoderCTC(Alphabet.build_alphabet(LABELS), lm)
    # compiled first (a cold cache takes longer than the limit on a loaded machine): the
    # limit is on the search stopping, not on compilation
    BeamSearchDecoderCTC(Alphabet.build_alphabet(LABELS), ConstLM(-1.0, 0.0)).decode(LP)
    t0 = time.perf_counter()
    with pytest.raises(kind, match=rf"BadLM returned .*{shown}"):
        if threads == 1:
            dec.decode(LP)
        else:
            dec.decode_batch(None, [LP, LP[::-1]], num_threads=2)
    assert lm.calls < 50 and time.perf_counter() - t0 < 20


class NanKenLM:
    """A ``kenlm.Model`` whose ``BaseScore`` is NaN for the word ``b`` (as a KenLM probing
    binary with NaN probabilities gives): the KenLM callback path of the search."""

    def __init__(self, model) -> None:
        self.model, self.order, self.calls = model, model.order, 0
        self.path = None  # no file: the search asks KenLM for every score

    def __contains__(self, word):
        return word in self.model

    def BeginSentenceWrite(self, state):  # noqa: N802 - KenLM's name
        self.model.BeginSentenceWrite(state)

    def NullContextWrite(self, state):  # noqa: N802 - KenLM's name
        self.model.NullContextWrite(state)

    def BaseScore(self, state, word, out):  # noqa: N802 - KenLM's name
        self.calls += 1
        if self.calls > 20000:
            raise _Looping("the search keeps asking for the same score")
        s = self.model.BaseScore(state, word, out)
        return float("nan") if word == "b" else s


@needs_kenlm
def test_kenlm_nan_score_raises_at_once(tmp_path):
    import kenlm

    model = NanKenLM(kenlm.Model(str(write(tmp_path, arpa_text()))))
    dec = BeamSearchDecoderCTC(Alphabet.build_alphabet(LABELS), LanguageModel(model, ["a", "b"]))
    with pytest.raises(ValueError, match=r"scored the word 'b' as nan"):
        dec.decode(LP)
    assert model.calls < 200


@pytest.mark.parametrize(
    ("prob", "bow"), [("nan", "-0.2"), ("inf", "-0.2"), ("-0.3", "nan"), ("-0.3", "inf")]
)
def test_ngram_tables_refuse_nan_and_inf(tmp_path, prob, bow):
    uni = UNIGRAMS[:3] + [f"{prob}\ta\t{bow}", UNIGRAMS[4]]
    p = write(tmp_path, arpa_text(uni))
    with pytest.raises(ValueError, match=r"m\.arpa' line 9: .*(nan|inf)"):
        read_arpa(p)
    with pytest.raises(ValueError, match="could not be loaded"):
        load_model(p, backend="fastctc")


# ------------------------------------------------------------------ 2. no beam
def test_hotword_weight_must_be_finite():
    dec = fastctc.build_ctcdecoder(LABELS)
    for w in (math.inf, -math.inf):
        with pytest.raises(ValueError, match=r"hotword_weight must be finite; got -?inf"):
            dec.decode(LP, hotwords=["a"], hotword_weight=w)
        with pytest.raises(ValueError, match="hotword_weight must be finite"):
            dec.decode_batch(None, [LP], hotwords=["a"], hotword_weight=w)


class ConstLM(BadLM):
    """A custom model with fixed (possibly -inf) word and word-part scores."""

    def __init__(self, word: float, part: float) -> None:
        super().__init__("none", 0.0)
        self.word, self.part = word, part

    def score_partial_token(self, partial_token):
        self._tick()
        return self.part

    def score(self, prev_state, word, is_last_word=False):
        self._tick()
        return self.word, 0


SCORES = st.sampled_from([-math.inf, -1e300, -5.0, 0.0, 3.0, math.nan])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    word=SCORES,
    part=SCORES,
    weight=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(math.inf)),
)
def test_decode_never_raises_index_error(word, part, weight):
    lm = ConstLM(word, part)
    dec = BeamSearchDecoderCTC(Alphabet.build_alphabet(LABELS), lm)
    calls = [
        lambda: dec.decode(LP, hotwords=["ab"], hotword_weight=weight),
        lambda: dec.decode_batch(None, [LP, LP], hotwords=["ab"], hotword_weight=weight),
        lambda: dec.decode_beams(LP, hotwords=["ab"], hotword_weight=weight),
    ]
    for call in calls:
        lm.calls = 0
        try:
            out = call()
        except (ValueError, TypeError) as err:
            assert not isinstance(err, IndexError)
            assert "hotword_weight" in str(err) or "ConstLM" in str(err) or "beam" in str(err)
            continue
        assert isinstance(out, str) or (out and all(r != [] for r in out))


def test_no_beam_from_a_model_of_zero_probabilities(tmp_path):
    """alpha=0 times a log10 probability of -inf is NaN for every word: no beam survives.
    decode_beams, decode and decode_batch raise a ValueError naming the model (before: an
    empty list, then IndexError)."""
    uni = ["-inf\t<unk>\t0", "-inf\t<s>\t0", "-inf\t</s>", "-inf\ta\t0", "-inf\tb\t0"]
    p = write(tmp_path, arpa_text(uni, ["-inf\t<s> a"]))
    lm = LanguageModel(load_model(p, backend="fastctc"), ["a", "b"], alpha=0.0)
    dec = BeamSearchDecoderCTC(Alphabet.build_alphabet(LABELS), lm)
    for call in (
        lambda: dec.decode_beams(LP),
        lambda: dec.decode(LP),
        lambda: dec.decode_batch(None, [LP, LP]),
    ):
        with pytest.raises(ValueError, match=r"no beam survived.*m\.arpa"):
            call()
    out = dec.decode_batch(None, [LP], errors="return")
    assert isinstance(out[0], ValueError)
    for scoring in ("callback", "resume"):  # the cache paths catch the NaN score itself
        other = BeamSearchDecoderCTC(Alphabet.build_alphabet(LABELS), lm, lm_scoring=scoring)
        with pytest.raises(ValueError, match=r"m\.arpa"):
            other.decode_beams(LP)
        with pytest.raises(ValueError, match=r"m\.arpa"):
            other.decode(LP)


# ------------------------------------------------------------------ 3. batches with a bad item
def test_decode_batch_returns_errors_per_item():
    dec = fastctc.build_ctcdecoder(LABELS)
    bad = np.zeros((3, 5))  # wrong width
    good = [dec.decode(LP), dec.decode(LP[::-1])]
    for threads in (1, 2):
        out = dec.decode_batch(None, [LP, bad, LP[::-1]], num_threads=threads, errors="return")
        assert out[0] == good[0] and out[2] == good[1]
        assert isinstance(out[1], ValueError) and "logits_list[1]" in str(out[1])
        beams = dec.decode_beams_batch(None, [bad, LP], num_threads=threads, errors="return")
        assert isinstance(beams[0], ValueError) and beams[1][0].text == good[0]
    with pytest.raises(ValueError, match=r"logits_list\[1\]"):
        dec.decode_batch(None, [LP, bad])
    with pytest.raises(ValueError, match="errors must be 'raise' or 'return'"):
        dec.decode_batch(None, [LP], errors="ignore")


def test_decode_batch_search_error_names_item():
    class NanForB(ConstLM):
        def score(self, prev_state, word, is_last_word=False):
            self._tick()
            return (math.nan if "b" in word else -1.0), 0

    dec = BeamSearchDecoderCTC(Alphabet.build_alphabet(LABELS), NanForB(-1.0, 0.0))
    only_a = np.log(np.array([[1e-12, 1e-12, 1.0, 1e-12]] * 2))
    for threads in (1, 2):
        out = dec.decode_batch(None, [only_a, LP], num_threads=threads, errors="return")
        assert out[0] == "a" and isinstance(out[1], ValueError) and "nan" in str(out[1])
    with pytest.raises(ValueError, match="nan") as info:
        dec.decode_batch(None, [only_a, LP], num_threads=1)
    if sys.version_info >= (3, 11):
        assert "logits_list[1]" in " ".join(info.value.__notes__)


# ------------------------------------------------------------------ 4. files that crash KenLM
_CRASH_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, sys.argv[2])
    import fastctc
    from fastctc.lm import LanguageModel, load_model
    path, kind = sys.argv[1], sys.argv[3]
    try:
        if kind == "load":
            load_model(path, backend="kenlm")
        elif kind == "build":
            fastctc.build_ctcdecoder(["", " ", "a"], kenlm_model_path=path)
        else:
            LanguageModel.load_from_dir(path)
        print(json.dumps(["ok", ""]))
    except Exception as err:
        print(json.dumps([type(err).__name__, str(err)]))
    """
)

BAD_HEADERS = {
    "negative": "ngram 1=5\nngram 2=-2",
    "gap": "ngram 1=5\nngram 3=2",
    "repeat": "ngram 1=5\nngram 2=2\nngram 2=2",
    "huge": "ngram 1=5\nngram 2=99999999999",
    "spaced": "ngram 1=5\nngram  2 = 2",
    "zero_unigrams": "ngram 1=0\nngram 2=2",
    "none": "",
}


def _in_subprocess(path: Path, kind: str) -> tuple[str, str]:
    r = subprocess.run(
        [sys.executable, "-c", _CRASH_SCRIPT, str(path), str(ROOT), kind],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, f"the process died ({r.returncode}): {r.stderr[-500:]}"
    return tuple(json.loads(r.stdout.strip().splitlines()[-1]))


@needs_kenlm
@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
def test_bad_arpa_header_never_reaches_kenlm(tmp_path, case):
    p = write(tmp_path, arpa_text(header=BAD_HEADERS[case]))
    kind, msg = _in_subprocess(p, "load")
    assert kind == "ValueError" and str(p) in msg and "header" in msg


@needs_kenlm
def test_crashing_header_through_every_door(tmp_path):
    text = arpa_text(header="ngram 1=5\nngram 2=-2")
    p = write(tmp_path, text)
    kind, msg = _in_subprocess(p, "build")
    assert kind == "ValueError" and "ngram 2=-2" in msg
    gz = tmp_path / "m.arpa.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    assert _in_subprocess(gz, "load")[0] == "ValueError"
    d = tmp_path / "lmdir"
    d.mkdir()
    (d / "attrs.json").write_text(
        json.dumps({"alpha": 0.5, "beta": 1.0, "unk_score_offset": -10.0, "score_boundary": True})
    )
    (d / "unigrams.txt").write_text("a\nb\n")
    (d / "m.arpa").write_text(text)
    kind, msg = _in_subprocess(d, "dir")
    assert kind == "ValueError" and "m.arpa" in msg


_HEADER_FUZZ = textwrap.dedent(
    """
    import random, sys
    sys.path.insert(0, sys.argv[2])
    from fastctc.lm import load_model
    rng = random.Random(int(sys.argv[3]))
    body = sys.argv[4]
    for k in range(40):
        lines = []
        for n in range(1, rng.randint(1, 4)):
            c = rng.choice(["-2", "-1", "0", "1", "5", "2", str(2**40), "x", "", "5 "])
            lines.append(f"ngram {rng.choice([n, n, n + 1, 0, -n])}={c}")
        with open(sys.argv[1], "w") as f:
            f.write("\\\\data\\\\\\n" + "\\n".join(lines) + body)
        try:
            load_model(sys.argv[1], backend="kenlm")
        except Exception:
            pass
    print("survived")
    """
)


@needs_kenlm
@pytest.mark.parametrize("seed", [1, 2])
def test_random_headers_never_crash(tmp_path, seed):
    body = arpa_text().split("\n\n", 1)[1]
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            _HEADER_FUZZ,
            str(tmp_path / "m.arpa"),
            str(ROOT),
            str(seed),
            "\n\n" + body,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "survived" in r.stdout, r.stderr[-500:]


@needs_kenlm
@pytest.mark.parametrize(("offset", "value"), [(88, 0), (146, 0xFF), (147, 1)])
def test_corrupt_binary_header_never_reaches_kenlm(tmp_path, offset, value):
    """Bytes of a KenLM trie binary's header (the order; the vocabulary size) that crashed
    KenLM when changed."""
    import fastctc.data
    from fastctc.lm.kenlm_binary import _SANITY

    data = bytearray(Path(fastctc.data.default_lm().path).read_bytes())
    assert offset >= len(_SANITY) and data[offset] != value
    data[offset] = value
    p = tmp_path / "m.bin"
    p.write_bytes(bytes(data))
    kind, msg = _in_subprocess(p, "load")
    assert kind == "ValueError" and "corrupt KenLM binary" in msg and str(p) in msg


def test_non_model_file_never_reaches_kenlm(tmp_path):
    p = tmp_path / "m.bin"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="neither an ARPA file"):
        fastctc.lm.check_model_file(p)


# ------------------------------------------------------------------ 5. KenLM's reading
# (probability, back-off, accepted by KenLM) for the line of the word "a"; checked against
# the kenlm module where it is installed.
NUMBER_CASES = [
    ("-0.3", "-0.2", True),
    ("-inf", "-0.2", True),
    ("-1e0", "-0.2", True),
    ("+0.0", "-0.2", True),
    ("0", "-0.2", True),
    ("-0.3", "0.2", True),
    ("nan", "-0.2", False),
    ("NaN", "-0.2", False),
    ("-nan", "-0.2", False),
    ("inf", "-0.2", False),
    ("-infinity", "-0.2", False),
    ("0.5", "-0.2", False),
    ("-1_0", "-0.2", False),
    ("-0.3", "inf", False),
    ("-0.3", "nan", False),
]


def _kenlm_accepts(path: Path) -> bool:
    import kenlm

    try:
        kenlm.Model(str(path))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(("prob", "bow", "accepted"), NUMBER_CASES)
def test_numbers_as_kenlm_reads_them(tmp_path, prob, bow, accepted):
    uni = UNIGRAMS[:3] + [f"{prob}\ta\t{bow}", UNIGRAMS[4]]
    p = write(tmp_path, arpa_text(uni))
    if kenlm_installed():
        assert _kenlm_accepts(p) == accepted
    if accepted:
        read_arpa(p)
    else:
        with pytest.raises(ValueError, match=r"m\.arpa' line 9"):
            read_arpa(p)


@pytest.mark.parametrize(
    ("case", "accepted"),
    [
        ("unigram_spaces", False),
        ("bigram_spaces", True),
        ("no_end", False),
        ("after_end", False),
        ("blank_before", True),
        ("comment_before", True),
        ("text_before", False),
    ],
)
def test_layout_as_kenlm_reads_it(tmp_path, case, accepted):
    if case == "unigram_spaces":
        text = arpa_text(UNIGRAMS[:3] + ["-0.3 a -0.2", UNIGRAMS[4]])
    elif case == "bigram_spaces":
        text = arpa_text(bi=["-0.1 <s> a", BIGRAMS[1]])
    elif case == "no_end":
        text = arpa_text(end=False)
    elif case == "after_end":
        text = arpa_text() + "junk\n"
    elif case == "blank_before":
        text = "\n \n" + arpa_text()
    elif case == "comment_before":
        text = "# a comment\n" + arpa_text()
    else:
        text = "a comment\n" + arpa_text()
    p = write(tmp_path, text)
    if kenlm_installed():
        assert _kenlm_accepts(p) == accepted
    if accepted:
        read_arpa(p)
    else:
        with pytest.raises(ValueError, match=r"m\.arpa'"):
            read_arpa(p)


def test_duplicates_keep_the_first_entry_as_kenlm(tmp_path):
    uni = UNIGRAMS + ["-0.9\ta\t-0.7"]
    bi = ["-0.1\t<s> a", "-0.7\t<s> a", BIGRAMS[1]]
    p = write(tmp_path, arpa_text(uni, bi))
    tables = read_arpa(p)
    got = tables.log10_scores(["a", "b", "</s>"]).tolist()
    expect = [np.float32(-0.1), np.float32(-0.2), np.float32(-0.5 - 0.1)]
    assert got == pytest.approx([float(x) for x in expect], abs=1e-6)
    if kenlm_installed():
        import kenlm

        m = kenlm.Model(str(p))
        full = [x[0] for x in m.full_scores("a b", bos=True, eos=True)]
        assert np.array(got, np.float32).tolist() == np.array(full, np.float32).tolist()


@settings(max_examples=60, deadline=None)
@given(
    probs=st.lists(
        st.sampled_from(["-0.3", "-1e0", "-inf", "0.5", "nan", "-1_0", "-2.", "-.5", "+0"]),
        min_size=4,
        max_size=4,
    ),
    sep=st.sampled_from(["\t", " "]),
    dup=st.booleans(),
)
def test_scanner_and_line_reader_agree(probs, sep, dup):
    uni = ["-1.0\t<unk>\t0", f"{probs[0]}\t<s>\t-0.5", f"{probs[1]}\t</s>"]
    uni += [f"{probs[2]}{sep}a\t-0.2", f"{probs[3]}\tb\t-0.1"]
    bi = BIGRAMS + (["-0.9\t<s> a"] if dup else [])
    data = arpa_text(uni, bi).encode()
    try:
        fast = read_arpa_bytes(data, "m")
    except ValueError as err:
        with pytest.raises(ValueError) as line_err:
            _read_lines(data.decode(), "m")
        assert str(err) == str(line_err.value)
        return
    slow = _read_lines(data.decode(), "m")
    assert fast.words == slow.words
    for a, b in zip(fast.arrays(True), slow.arrays(True), strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ 6. memory and time
def test_blank_line_flood_is_rejected_quickly(tmp_path):
    flood = tmp_path / "flood.arpa.gz"
    flood.write_bytes(gzip.compress(b"\n" * (16 << 20), 9))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"does not start with a \\data\\ line"):
        read_arpa(flood)
    head = "\\data\\\nngram 1=1\n\n"
    flood.write_bytes(gzip.compress(head.encode() + b"\n" * (16 << 20), 9))
    with pytest.raises(ValueError, match="blank lines"):
        read_arpa(flood)
    with pytest.raises(ValueError, match="blank lines"):
        read_arpa_bytes(head.encode() + b"\n" * (1 << 20), "flood")
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("count", [10**12, MAX_NGRAMS + 1, 10**6])
def test_absurd_counts_rejected_before_allocating(tmp_path, count):
    p = write(tmp_path, arpa_text(header=f"ngram 1=5\nngram 2={count}"))
    with pytest.raises(ValueError, match=r"m\.arpa'.*(more than|n-grams)"):
        read_arpa(p)
    with pytest.raises(ValueError):
        read_arpa_bytes(p.read_bytes(), "m")


# ------------------------------------------------------------------ 7. messages
def test_alphabet_loads_checks_its_json():
    with pytest.raises(ValueError, match="duplicate entry 'a'"):
        Alphabet.loads(json.dumps({"labels": ["", "a", "a"], "is_bpe": False}))
    with pytest.raises(ValueError, match="'is_bpe' must be true or false"):
        Alphabet.loads(json.dumps({"labels": ["", "a"], "is_bpe": "no"}))
    with pytest.raises(ValueError, match="blank"):
        Alphabet.loads(json.dumps({"labels": ["a", "b"], "is_bpe": False}))
    assert Alphabet.loads(Alphabet.build_alphabet(LABELS).dumps()).labels == LABELS


def test_lone_surrogates_are_value_errors():
    with pytest.raises(ValueError, match=r"labels\[2\] = '\\udc80'"):
        Alphabet.build_alphabet(["", " ", "\udc80"])
    dec = fastctc.build_ctcdecoder(LABELS)
    with pytest.raises(ValueError, match=r"hotwords\[1\] = 'a\\ud800'"):
        dec.decode(LP, hotwords=["b", "a\ud800"])


def test_lone_surrogate_unigram_is_a_value_error(tmp_path):
    model = load_model(write(tmp_path, arpa_text()), backend="fastctc")
    with pytest.raises(ValueError, match=r"unigram 'b\\udfff' is not valid Unicode"):
        LanguageModel(model, ["a", "b\udfff"])
    if kenlm_installed():
        with pytest.raises(ValueError, match="not valid Unicode"):
            LanguageModel(load_model(tmp_path / "m.arpa", backend="kenlm"), ["a", "b\udfff"])


def test_save_to_dir_with_custom_model_writes_nothing(tmp_path):
    dec = BeamSearchDecoderCTC(Alphabet.build_alphabet(LABELS), ConstLM(-1.0, 0.0))
    with pytest.raises(NotImplementedError, match="ConstLM cannot be saved"):
        dec.save_to_dir(tmp_path)
    assert os.listdir(tmp_path) == []


def test_errors_quote_only_a_short_excerpt(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("\\data\\\nngram 1=SECRET" + "S" * 500 + "\n\n")
    link = tmp_path / "m.arpa"
    link.symlink_to(secret)
    with pytest.raises(ValueError) as info:
        read_arpa(link)
    assert "SSSS" * 20 not in str(info.value) and len(str(info.value)) < 400


_LM_SIGINT_SCRIPT = """
import sys, time
import numpy as np
import fastctc
demo = fastctc.data.demo()
bundled = fastctc.data.default_lm()
dec = fastctc.build_ctcdecoder(demo.labels, kenlm_model_path=bundled.path,
                               unigrams=bundled.unigrams)
lp = np.concatenate([demo.log_probs[i % len(demo.log_probs)] for i in range(2000)])
dec.decode(lp[:5000], beam_width=64)  # compiled, warm, and long enough for a worker thread
print("ready", len(lp), flush=True)
t0 = time.perf_counter()
dec.decode(lp, beam_width=64)
print("finished", time.perf_counter() - t0, flush=True)
"""


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="needs the compiled kernels")
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_interrupts_a_long_lm_search():
    assert_sigint_stops(_LM_SIGINT_SCRIPT)
