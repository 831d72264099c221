"""KenLM adapter: scores checked by hand against tests/data/tiny.arpa, pyctcdecode as reference,
the binary model, hotword tables and every error path."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import kenlm
import numpy as np
import pytest

import fastctc
from fastctc.kernels.lm_cache import table_find
from fastctc.lm import (
    LanguageModel,
    hotword_tables,
    load_kenlm_model,
    load_unigram_set_from_arpa,
    normalise_hotwords,
    word_hashes,
)
from tests import small_lm

TINY = Path(__file__).parent / "data" / "tiny.arpa"
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog"]
LN10 = math.log(10.0)


@pytest.fixture(scope="module")
def tiny_model():
    return kenlm.Model(str(TINY))


def test_unigrams_from_arpa():
    assert load_unigram_set_from_arpa(TINY) == set(WORDS) | {"<unk>", "<s>", "</s>"}


def test_score_by_hand(tiny_model):
    lm = LanguageModel(tiny_model, WORDS, alpha=0.7, beta=2.0, unk_score_offset=-10.0)
    start = lm.get_start_state()
    s, st = lm.score(start, "the")
    assert s == pytest.approx(0.7 * LN10 * -0.3 + 2.0, rel=1e-6)  # bigram "<s> the"
    s2, _ = lm.score(st, "dog")  # backoff(the) + p(dog)
    assert s2 == pytest.approx(0.7 * LN10 * (-0.4 - 1.9) + 2.0, rel=1e-6)
    s3, _ = lm.score(st, "zebra")  # unknown: p(<unk>) + backoff + offset
    assert s3 == pytest.approx(0.7 * LN10 * (-0.4 - 1.0 - 10.0) + 2.0, rel=1e-6)
    s4, _ = lm.score(st, "mat", is_last_word=True)  # p(mat|the) + p(</s>|mat)
    assert s4 == pytest.approx(0.7 * LN10 * (-0.8 - 0.5) + 2.0, rel=1e-6)


def test_no_boundary_scores_without_sentence_markers(tiny_model):
    lm = LanguageModel(tiny_model, WORDS, alpha=1.0, beta=0.0, score_boundary=False)
    s, _ = lm.score(lm.get_start_state(), "the", is_last_word=True)
    assert s == pytest.approx(LN10 * -1.1, rel=1e-6)  # unigram, no <s>, no </s>


def test_partial_token_scores(tiny_model):
    lm = LanguageModel(tiny_model, WORDS, unk_score_offset=-10.0)
    assert lm.score_partial_token("ca") == 0.0
    assert lm.score_partial_token("xq") == -10.0
    assert lm.score_partial_token("zzzzzzzzz") == pytest.approx(-10.0 * 9 / 6)
    no_uni = LanguageModel(tiny_model, None, unk_score_offset=-10.0)
    assert no_uni.score_partial_token("ca") == -10.0  # no unigrams: every part is unknown


@pytest.mark.reference
def test_matches_pyctcdecode_language_model(tiny_model):
    from pyctcdecode.language_model import LanguageModel as RefLM

    ref = RefLM(tiny_model, WORDS, alpha=0.6, beta=1.2, unk_score_offset=-7.0)
    ours = LanguageModel(tiny_model, WORDS, alpha=0.6, beta=1.2, unk_score_offset=-7.0)
    rs, os_ = ref.get_start_state(), ours.get_start_state()
    for w in ["the", "cat", "zebra", "sat", "", "on", "the", "mat"]:
        for last in (False, True):
            a, _ = ref.score(rs, w, is_last_word=last)
            b, _ = ours.score(os_, w, is_last_word=last)
            assert a == pytest.approx(b, rel=1e-12)
        _, rs = ref.score(rs, w)
        _, os_ = ours.score(os_, w)
    for part in ["t", "th", "ca", "x", "dogs", "zzzzzzzz"]:
        assert ours.score_partial_token(part) == ref.score_partial_token(part)


def test_binary_model_scores_equal_arpa():
    words = ["the", "house", "was", "quite", "zzqx"]
    a = LanguageModel(str(small_lm.BINARY), words[:4])
    b = LanguageModel(str(small_lm.ARPA), words[:4])
    sa, sb = a.get_start_state(), b.get_start_state()
    for w in words:
        x, sa = a.score(sa, w)
        y, sb = b.score(sb, w)
        assert x == pytest.approx(y, abs=1e-4)


def test_hotword_tables():
    wkeys, pkeys, minlen = hotword_tables(("new york", "newt"))
    h = word_hashes(["new", "york", "newt", "ne", "yor", "x"])
    assert table_find(wkeys, h[0]) >= 0 and table_find(wkeys, h[2]) >= 0
    assert table_find(wkeys, h[3]) < 0
    assert minlen[table_find(pkeys, h[3])] == 3  # "ne" -> shortest hotword "new"
    assert minlen[table_find(pkeys, h[4])] == 4
    assert table_find(pkeys, h[5]) < 0


def test_hotwords_bad_type():
    with pytest.raises(TypeError, match="hotwords must be a list of strings"):
        normalise_hotwords("paris")


def test_hotwords_non_string_item():
    with pytest.raises(TypeError, match=r"hotwords\[1\] must be a str"):
        normalise_hotwords(["a", 3])


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fastctc.build_ctcdecoder(["", " ", "a"], kenlm_model_path=str(tmp_path / "nope.arpa"))


def test_unreadable_model_file(tmp_path):
    bad = tmp_path / "bad.arpa"
    bad.write_text("this is not an ARPA file\n")
    with pytest.raises(ValueError, match="neither an ARPA file .* nor a KenLM binary"):
        load_kenlm_model(bad)


def test_model_without_needed_vocabulary(tiny_model):
    with pytest.raises(ValueError, match="none of the 2 unigrams"):
        LanguageModel(tiny_model, ["zebra", "yak"])


def test_missing_kenlm_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "kenlm", None)  # makes `import kenlm` raise ImportError
    dec = fastctc.build_ctcdecoder(["", " ", "a"], kenlm_model_path=str(TINY))
    assert dec.language_model.backend == "fastctc"  # ARPA models need no kenlm
    gap = tmp_path / "gap.arpa"  # a 3-gram whose last two words are no 2-gram: only KenLM reads it
    text = TINY.read_text().replace("ngram 2=9\n", "ngram 2=9\nngram 3=1\n")
    gap.write_text(text.replace("\\end\\", "\\3-grams:\n-0.1\ta dog sat\n\n\\end\\"))
    with pytest.raises(ImportError, match=r'gap.arpa.*pip install "fastctc\[kenlm\]"'):
        fastctc.build_ctcdecoder(["", " ", "a"], kenlm_model_path=str(gap))


def test_reset_params_type_checked(tiny_model):
    lm = LanguageModel(tiny_model, WORDS)
    with pytest.raises(TypeError, match="alpha must be a float"):
        lm.reset_params(alpha="big")
    with pytest.raises(TypeError, match="score_boundary must be a bool"):
        lm.reset_params(score_boundary=1.0)


def test_save_and_load_dir(tmp_path, tiny_model):
    lm = LanguageModel(tiny_model, WORDS, alpha=0.3, beta=0.9)
    lm.save_to_dir(str(tmp_path))
    back = LanguageModel.load_from_dir(str(tmp_path))
    assert (back.alpha, back.beta, back.unigrams) == (0.3, 0.9, set(WORDS))
    s0, _ = lm.score(lm.get_start_state(), "cat")
    s1, _ = back.score(back.get_start_state(), "cat")
    assert s0 == s1


def test_load_dir_wrong_contents(tmp_path):
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ValueError, match="must hold attrs.json"):
        LanguageModel.load_from_dir(str(tmp_path))


def test_word_hashes_distinct():
    words = [f"w{i}" for i in range(2000)] + WORDS
    assert len(set(word_hashes(words).tolist())) == len(words)
    assert np.all(word_hashes(words) != 0)


def test_spell_queries_matches_token_chains():
    """The kernel that spells queried words against a plain walk of the token chains."""
    from fastctc.kernels import lm_beam as kb
    from fastctc.lm import encode_strings

    pieces = ["", "ab", "c", "déf", "g"]
    codes, offsets = encode_strings(pieces)
    # token nodes (parent, label, frame): 0 = "ab", 1 = "ab"+"c", 2 = "ab"+"c"+"déf", 3 = "g"
    tk = np.array([[-1, 1, 0], [0, 2, 1], [1, 3, 2], [-1, 4, 3]], dtype=np.int64)

    def walk(node, n):
        out = []
        for _ in range(n):
            out.append(pieces[tk[node, 1]])
            node = tk[node, 0]
        return "".join(reversed(out))

    q = np.zeros((5, kb.Q_COLS), dtype=np.int64)
    q[0] = (kb.Q_WORD, 7, -1, 2, 3, 0)
    q[1] = (kb.Q_LM, 7, 4, 2, 3, 0)
    q[2] = (kb.Q_WORD, 7, -1, 2, 2, 1)
    q[3] = (kb.Q_PARTIAL, 1, -1, -2 - 3, 3, 0)  # "ab" + "c" then label 3
    q[4] = (kb.Q_WORD, 7, -1, 3, 1, 0)
    expect = [walk(2, 3), "", walk(2, 2), walk(1, 2) + pieces[3], walk(3, 1)]
    got, off = kb.spell_queries(q, tk, codes, offsets)
    text = got.tobytes().decode("utf-32-le")
    assert [text[off[i] : off[i + 1]] for i in range(5)] == expect
    assert expect[0] == "abcdéf" and expect[2] == "cdéf"
