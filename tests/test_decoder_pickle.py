"""Decoders as other libraries handle them: pickled (multiprocessing, Dask), deep-copied
(transformers), loaded from model directories and hub caches, with pyctcdecode's advice
logged."""

from __future__ import annotations

import copy
import json
import logging
import multiprocessing
import os
import pickle
import shutil
import sys

import pytest

import fastctc
from fastctc.alphabet import Alphabet
from fastctc.lm import AbstractLanguageModel, LanguageModel, load_model
from tests import small_lm
from tests.simulate import CHAR_LABELS, simulate_char

logging.getLogger("pyctcdecode").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def utts():
    return [simulate_char(s, i) for i, s in enumerate(small_lm.dev_sentences()[:4])]


def _decoder(backend="auto", path=small_lm.ARPA, **kw):
    model = load_model(str(path), backend=backend) if backend != "auto" else str(path)
    lm = LanguageModel(model, small_lm.unigrams(), alpha=0.7, beta=1.2, **kw)
    return fastctc.BeamSearchDecoderCTC(Alphabet.build_alphabet(CHAR_LABELS), lm)


def _beams(dec, lps):
    return [
        [(b.text, b.text_frames, b.logit_score, b.lm_score) for b in dec.decode_beams(x)]
        for x in lps
    ]


class LengthLM(AbstractLanguageModel):
    """A custom model (module level, so that it pickles): words scored by their length."""

    order = 2

    def get_start_state(self):
        return ()

    def score_partial_token(self, partial_token):
        return -0.2 * len(partial_token)

    def score(self, prev_state, word, is_last_word=False):
        return -0.4 * len(word) - (0.3 if is_last_word else 0.0), (word,)


@pytest.mark.parametrize("backend", ["fastctc", "kenlm"])
def test_pickle_round_trip(utts, backend):
    if backend == "kenlm":
        pytest.importorskip("kenlm")
    dec = _decoder(backend)
    dec.reset_params(alpha=0.9)
    again = pickle.loads(pickle.dumps(dec))
    assert again is not dec and again.language_model.alpha == 0.9
    assert again.language_model.backend == backend
    assert _beams(again, utts) == _beams(dec, utts)
    # one rebuild per process and recipe
    assert pickle.loads(pickle.dumps(dec)) is again


def test_pickle_without_or_with_a_custom_model(utts):
    plain = fastctc.build_ctcdecoder(CHAR_LABELS)
    assert _beams(pickle.loads(pickle.dumps(plain)), utts) == _beams(plain, utts)
    custom = fastctc.BeamSearchDecoderCTC(Alphabet.build_alphabet(CHAR_LABELS), LengthLM())
    again = pickle.loads(pickle.dumps(custom))
    assert isinstance(again.language_model, LengthLM)
    assert _beams(again, utts[:2]) == _beams(custom, utts[:2])


def test_changed_parameters_are_not_shared(utts):
    """A rebuilt decoder changed by reset_params no longer stands for its recipe."""
    blob = pickle.dumps(_decoder())
    first = pickle.loads(blob)
    first.reset_params(beta=-3.0)
    second = pickle.loads(blob)
    assert second is not first and second.language_model.beta == 1.2


def test_deepcopy_is_independent(utts):
    dec = _decoder()
    dup = copy.deepcopy(dec)
    assert dup is not dec and dup.language_model is not dec.language_model
    assert dup.language_model.kenlm_model is dec.language_model.kenlm_model  # shared, read-only
    want = _beams(dec, utts[:2])
    dup.reset_params(alpha=0.1)
    assert dec.language_model.alpha == 0.7
    assert _beams(dec, utts[:2]) == want
    assert _beams(dup, utts[:2]) != want


def test_cloudpickle(utts):
    cloudpickle = pytest.importorskip("cloudpickle")
    dec = _decoder()
    assert _beams(cloudpickle.loads(cloudpickle.dumps(dec)), utts[:2]) == _beams(dec, utts[:2])


def test_pickled_model_file_must_be_readable(tmp_path):
    path = tmp_path / "m.arpa.gz"
    shutil.copy(small_lm.ARPA, path)
    blob = pickle.dumps(_decoder(path=path))
    os.remove(path)
    with pytest.raises(FileNotFoundError, match=r"m\.arpa\.gz"):
        pickle.loads(blob)


def _decode_in_worker(dec, lp):
    return os.getpid(), id(dec), dec.decode(lp)


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_multiprocessing(utts, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    dec = _decoder()
    want = [dec.decode(x) for x in utts]
    ctx = multiprocessing.get_context(method)
    tasks = [(dec, x) for x in utts * 2]
    with ctx.Pool(2) as pool:
        out = pool.starmap(_decode_in_worker, tasks, chunksize=1)
    assert [o[2] for o in out] == want * 2
    by_pid: dict[int, set[int]] = {}
    for pid, ident, _ in out:
        by_pid.setdefault(pid, set()).add(ident)
    assert all(len(ids) == 1 for ids in by_pid.values())  # rebuilt once per process


def _model_dir(tmp_path, extra=True, path=small_lm.ARPA):
    """A directory as a Hugging Face model repository holds it: the decoder's files beside
    the model's own."""
    d = tmp_path / "model"
    d.mkdir()
    _decoder(path=path).save_to_dir(str(d))
    if extra:
        for name in ("preprocessor_config.json", "config.json", "tokenizer_config.json"):
            (d / name).write_text("{}")
    return d


def test_load_from_dir_with_other_files(tmp_path, utts):
    d = _model_dir(tmp_path)
    files = fastctc.BeamSearchDecoderCTC.parse_directory_contents(str(d))
    assert files == {
        "alphabet": str(d / "alphabet.json"),
        "language_model": str(d / "language_model"),
    }
    dec = fastctc.BeamSearchDecoderCTC.load_from_dir(str(d), "utf-8")  # as transformers calls it
    assert _beams(dec, utts[:2]) == _beams(_decoder(), utts[:2])
    assert fastctc.BeamSearchDecoderCTC._ALPHABET_SERIALIZED_FILENAME == "alphabet.json"
    assert fastctc.BeamSearchDecoderCTC._LANGUAGE_MODEL_SERIALIZED_DIRECTORY == "language_model"
    fastctc.BeamSearchDecoderCTC.clear_class_models()  # nothing to clear, still callable
    assert dec.decode(utts[0])


def test_load_from_dir_matches_pyctcdecode(tmp_path, utts):
    pyctcdecode = pytest.importorskip("pyctcdecode")
    d = _model_dir(tmp_path, path=small_lm.BINARY)  # pyctcdecode reads no .arpa.gz
    ours = fastctc.BeamSearchDecoderCTC.load_from_dir(str(d), "utf-8")
    ref = pyctcdecode.BeamSearchDecoderCTC.load_from_dir(str(d), "utf-8")
    for x in utts:
        r = ref.decode_beams(x)
        assert [b.text for b in ours.decode_beams(x)] == [b[0] for b in r]


def test_directory_with_other_files_but_no_language_model(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    (d / "alphabet.json").write_text(json.dumps({"labels": ["", " ", "a"], "is_bpe": False}))
    (d / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="no language_model/"):
        fastctc.BeamSearchDecoderCTC.load_from_dir(str(d))


def test_load_from_hf_hub_reads_the_cache_offline(tmp_path, utts):
    pytest.importorskip("huggingface_hub")
    cache = tmp_path / "hub"
    rev = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--someone--tiny-lm"
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    _decoder().save_to_dir(str(snap))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    dec = fastctc.BeamSearchDecoderCTC.load_from_hf_hub(
        "someone/tiny-lm", cache_dir=str(cache), local_files_only=True
    )
    assert _beams(dec, utts[:2]) == _beams(_decoder(), utts[:2])


def test_load_from_hf_hub_without_huggingface_hub(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ImportError, match="pip install huggingface_hub"):
        fastctc.BeamSearchDecoderCTC.load_from_hf_hub("someone/tiny-lm")


def test_pyctcdecode_advice_is_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="fastctc"):
        fastctc.build_ctcdecoder(["", "a", "bb"])
    assert "longer than one character" in caplog.text
    assert "no word delimiter" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fastctc"):
        LanguageModel(str(small_lm.ARPA))
    assert "No unigrams given" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fastctc"):
        fastctc.build_ctcdecoder(CHAR_LABELS)  # a usual character vocabulary: nothing to say
    assert caplog.text == ""
