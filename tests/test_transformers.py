"""fastctc in Hugging Face transformers: ``fastctc.transformers`` against transformers' own
``Wav2Vec2ProcessorWithLM`` with pyctcdecode's decoder.

A tiny ``Wav2Vec2ForCTC`` built from a config (random weights, no Hub access), a character
tokenizer with the usual special tokens, the suite's small 4-gram (:mod:`tests.small_lm`).
Inputs are raw logits: the tiny model's, and simulated utterances of the small model's held-out
sentences shifted by a random amount per frame (what a model's logits look like to a decoder).
Texts and word offsets must be identical to pyctcdecode's, scores equal within 1e-5.
"""

from __future__ import annotations

import copy
import doctest
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

import fastctc  # noqa: E402
import fastctc.transformers  # noqa: E402
from fastctc.transformers import (  # noqa: E402
    Wav2Vec2ProcessorWithLM,
    as_fastctc_decoder,
    load_decoder,
    use_fastctc,
)
from tests import small_lm  # noqa: E402
from tests.simulate import CHAR_LABELS, simulate_char  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT") == "1",
    reason="too slow with NUMBA_DISABLE_JIT=1 (whole-utterance LM decoding)",
)
reference = pytest.mark.reference

#: The tokenizer's vocabulary: the special tokens of Hugging Face's wav2vec2 models, then
#: the small model's characters ("|" is the word delimiter).
VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", "'", *"abcdefghijklmnopqrstuvwxyz"]
SCORE_TOL = 1e-5
HOTWORDS = ["peculiar lantern", "vanished"]


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Feature extractor, tokenizer and the decoder's labels (the vocabulary in id order)."""
    d = tmp_path_factory.mktemp("vocab")
    (d / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    tokenizer = transformers.Wav2Vec2CTCTokenizer(str(d / "vocab.json"))
    feature_extractor = transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, return_attention_mask=True
    )
    vocab = tokenizer.get_vocab()
    labels = sorted(vocab, key=vocab.get)
    assert labels == VOCAB
    return feature_extractor, tokenizer, labels


def fastctc_decoder(labels):
    return fastctc.build_ctcdecoder(labels, str(small_lm.BINARY), small_lm.unigrams())


def pyctcdecode_decoder(labels):
    pyctcdecode = pytest.importorskip("pyctcdecode")
    pytest.importorskip("kenlm")
    return pyctcdecode.build_ctcdecoder(labels, str(small_lm.BINARY), small_lm.unigrams())


@pytest.fixture(scope="module")
def ours(parts):
    """fastctc's processor (its decoder's parameters are never changed)."""
    fe, tok, labels = parts
    return Wav2Vec2ProcessorWithLM(fe, tok, fastctc_decoder(labels))


@pytest.fixture(scope="module")
def theirs(parts):
    """transformers' processor with pyctcdecode's decoder (parameters never changed)."""
    fe, tok, labels = parts
    return transformers.Wav2Vec2ProcessorWithLM(fe, tok, pyctcdecode_decoder(labels))


def simulated_logits(n: int) -> np.ndarray:
    """``(n, T, 32)`` raw logits of ``n`` held-out sentences in the tokenizer's column order,
    padded with rows of -100 (as transformers pads batches of logits)."""
    rng = np.random.default_rng(7)
    columns = [VOCAB.index({"": "<pad>", " ": "|"}.get(c, c)) for c in CHAR_LABELS]
    out = []
    for i, sentence in enumerate(small_lm.dev_sentences(n)):
        lp = simulate_char(sentence, i)
        x = np.full((lp.shape[0], len(VOCAB)), -30.0, dtype=np.float32)
        x[:, columns] = lp
        out.append(x + rng.normal(2.0, 3.0, size=(len(x), 1)).astype(np.float32))
    batch = np.full((n, max(len(x) for x in out), len(VOCAB)), -100.0, dtype=np.float32)
    for i, x in enumerate(out):
        batch[i, : len(x)] = x
    return batch


def unpadded(logits: np.ndarray) -> np.ndarray:
    """One utterance of a padded batch without its padding rows."""
    return logits[(logits != -100).all(axis=-1)]


@pytest.fixture(scope="module")
def sim_logits():
    return simulated_logits(4)


@pytest.fixture(scope="module")
def model(parts):
    """A tiny randomly initialised ``Wav2Vec2ForCTC`` (one frame per 20 samples), its output
    layer scaled up so that frames are peaky like a trained model's, the special tokens but
    the blank kept unlikely."""
    _, tok, _ = parts
    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        pad_token_id=tok.pad_token_id,
    )
    m = transformers.Wav2Vec2ForCTC(config).eval()
    with torch.no_grad():
        m.lm_head.weight.mul_(40.0)
        m.lm_head.bias[1:4] = -20.0
    return m


@pytest.fixture(scope="module")
def audio():
    rng = np.random.default_rng(3)
    return [rng.standard_normal(n).astype(np.float32) for n in (2400, 1600)]


@pytest.fixture(scope="module")
def model_logits(parts, model, audio):
    """The tiny model's raw logits ``(2, T, 32)`` for two padded clips."""
    fe = parts[0]
    inputs = fe(audio, sampling_rate=16000, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**inputs).logits.numpy()


def _flat(scores) -> list[float]:
    """A score, or nested lists of them (n_best lists differ in length), as one list."""
    if isinstance(scores, (list, tuple)):
        return [x for s in scores for x in _flat(s)]
    return [float(scores)]


def assert_same(ours_out, theirs_out):
    """Identical texts and word offsets, scores within SCORE_TOL."""
    assert ours_out.text == theirs_out.text
    assert ours_out.word_offsets == theirs_out.word_offsets
    for name in ("logit_score", "lm_score"):
        a, b = _flat(getattr(ours_out, name)), _flat(getattr(theirs_out, name))
        np.testing.assert_allclose(a, b, rtol=0, atol=SCORE_TOL, err_msg=name)


# ------------------------------------------------------------------------- the module
CHILD = """
import sys
import fastctc.transformers as ft
print(sorted(m for m in ("transformers", "torch", "pyctcdecode") if m in sys.modules))
sys.modules["transformers"] = None  # as if not installed
try:
    ft.Wav2Vec2ProcessorWithLM
except ImportError as err:
    print("load_decoder" in str(err))
"""


def test_import_needs_no_transformers():
    """``import fastctc.transformers`` imports neither transformers nor torch; without
    transformers the class is an ImportError that names the way out."""
    root = Path(__file__).resolve().parents[1]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", "True"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        fastctc.transformers.nothing  # noqa: B018


def test_docstring_examples():
    result = doctest.testmod(fastctc.transformers, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# ------------------------------------------------------------------------- the class
def test_is_transformers_processor(ours, parts):
    fe, tok, _ = parts
    assert isinstance(ours, transformers.Wav2Vec2ProcessorWithLM)
    assert isinstance(ours.decoder, fastctc.BeamSearchDecoderCTC)
    assert ours.feature_extractor is fe and ours.tokenizer is tok
    assert ours.language_model is ours.decoder.language_model
    text = repr(ours)  # transformers' to_dict, without copying the decoder
    assert "Wav2Vec2ProcessorWithLM" in text and "decoder" not in ours.to_dict()
    # the processor's own methods: features and labels
    features = ours(np.zeros(1600, dtype=np.float32), sampling_rate=16000)
    assert np.asarray(features["input_values"]).shape == (1, 1600)
    assert ours(text="the cat")["input_ids"] == tok("the cat")["input_ids"]


def test_pickle_and_copy(ours, sim_logits):
    expected = ours.batch_decode(sim_logits[:2]).text
    for other in (pickle.loads(pickle.dumps(ours)), copy.deepcopy(ours)):
        assert type(other) is type(ours)
        assert other.batch_decode(sim_logits[:2]).text == expected


def test_rejects_what_transformers_rejects(parts):
    fe, tok, labels = parts
    with pytest.raises(TypeError, match="fastctc.BeamSearchDecoderCTC"):
        Wav2Vec2ProcessorWithLM(fe, tok, object())
    no_z = [x for x in labels if x != "z"]
    with pytest.raises(ValueError, match=r"\{'z'\} are defined in the tokenizer"):
        Wav2Vec2ProcessorWithLM(fe, tok, fastctc.build_ctcdecoder(no_z))
    other = transformers.SequenceFeatureExtractor(16, 16000, 0.0)
    with pytest.raises(ValueError, match="feature_extractor"):
        Wav2Vec2ProcessorWithLM(other, tok, fastctc_decoder(labels))


def test_works_without_pyctcdecode(monkeypatch, parts, tmp_path, sim_logits, ours):
    """Neither the class nor its loading imports pyctcdecode (transformers' does)."""
    monkeypatch.setitem(sys.modules, "pyctcdecode", None)
    fe, tok, labels = parts
    processor = Wav2Vec2ProcessorWithLM(fe, tok, fastctc_decoder(labels))
    processor.save_pretrained(tmp_path)
    loaded = Wav2Vec2ProcessorWithLM.from_pretrained(tmp_path)
    assert_same(loaded.batch_decode(sim_logits[:2]), ours.batch_decode(sim_logits[:2]))
    with pytest.raises(ImportError):
        transformers.Wav2Vec2ProcessorWithLM(fe, tok, processor.decoder)


# --------------------------------------------------------------- same as pyctcdecode
@reference
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"output_word_offsets": True, "n_best": 3},
        {"hotwords": HOTWORDS, "hotword_weight": 8.0, "output_word_offsets": True},
        {"beam_width": 16, "beam_prune_logp": -20.0, "token_min_logp": -8.0, "n_best": 2},
    ],
    ids=["default", "n_best", "hotwords", "search"],
)
def test_batch_decode_matches_pyctcdecode(ours, theirs, sim_logits, kwargs):
    assert_same(ours.batch_decode(sim_logits, **kwargs), theirs.batch_decode(sim_logits, **kwargs))


@reference
def test_model_logits_match_pyctcdecode(ours, theirs, model_logits):
    for kwargs in ({"output_word_offsets": True}, {"output_word_offsets": True, "n_best": 4}):
        assert_same(
            ours.batch_decode(model_logits, **kwargs), theirs.batch_decode(model_logits, **kwargs)
        )
    tensor = torch.from_numpy(model_logits).requires_grad_()
    assert_same(ours.batch_decode(tensor, n_best=4), ours.batch_decode(model_logits, n_best=4))


@reference
@pytest.mark.parametrize(
    "kwargs",
    [
        {"output_word_offsets": True},
        {"output_word_offsets": True, "n_best": 3, "hotwords": HOTWORDS},
        {"n_best": 1000},
    ],
    ids=["offsets", "n_best", "all"],
)
def test_decode_matches_pyctcdecode(ours, theirs, sim_logits, model_logits, kwargs):
    one = unpadded(sim_logits[2])
    assert_same(ours.decode(one, **kwargs), theirs.decode(one, **kwargs))
    assert_same(ours.decode(model_logits[1], **kwargs), theirs.decode(model_logits[1], **kwargs))


@reference
def test_lm_parameters_given_stay_set(parts, sim_logits):
    """As with pyctcdecode, alpha/beta/... given to a call are set on the decoder."""
    fe, tok, labels = parts
    ours = Wav2Vec2ProcessorWithLM(fe, tok, fastctc_decoder(labels))
    theirs = transformers.Wav2Vec2ProcessorWithLM(fe, tok, pyctcdecode_decoder(labels))
    batch = sim_logits[:2]
    params = {"alpha": 0.2, "beta": 0.4, "unk_score_offset": -4.0, "lm_score_boundary": False}
    assert_same(ours.batch_decode(batch, **params), theirs.batch_decode(batch, **params))
    assert_same(ours.batch_decode(batch), theirs.batch_decode(batch))
    lm = ours.language_model
    assert (lm.alpha, lm.beta, lm.unk_score_offset, lm.score_boundary) == (0.2, 0.4, -4.0, False)
    one = unpadded(batch[1])
    assert_same(ours.decode(one, alpha=1.5, beta=0.0), theirs.decode(one, alpha=1.5, beta=0.0))
    assert ours.language_model.alpha == 1.5


# ------------------------------------------------------------- saving and loading
@reference
def test_save_and_load(ours, theirs, parts, tmp_path, sim_logits):
    fe, tok, _ = parts
    ours.save_pretrained(tmp_path / "ours")
    loaded = Wav2Vec2ProcessorWithLM.from_pretrained(tmp_path / "ours")
    assert type(loaded) is Wav2Vec2ProcessorWithLM
    assert loaded.decoder.labels == ours.decoder.labels
    assert loaded.tokenizer.get_vocab() == tok.get_vocab()
    assert loaded.feature_extractor.to_dict() == fe.to_dict()
    batch = sim_logits[:3]
    expected = theirs.batch_decode(batch, output_word_offsets=True)
    assert_same(loaded.batch_decode(batch, output_word_offsets=True), expected)
    # pyctcdecode reads what fastctc wrote, and the other way round
    pyctcdecode = pytest.importorskip("pyctcdecode")
    read_back = pyctcdecode.BeamSearchDecoderCTC.load_from_dir(str(tmp_path / "ours"))
    again = transformers.Wav2Vec2ProcessorWithLM(fe, tok, read_back)
    assert_same(again.batch_decode(batch, output_word_offsets=True), expected)
    theirs.save_pretrained(tmp_path / "theirs")
    from_theirs = Wav2Vec2ProcessorWithLM.from_pretrained(tmp_path / "theirs")
    assert_same(from_theirs.batch_decode(batch, output_word_offsets=True), expected)


def test_from_pretrained_overrides(ours, tmp_path):
    ours.save_pretrained(tmp_path)
    loaded = Wav2Vec2ProcessorWithLM.from_pretrained(
        tmp_path, alpha=0.25, beta=2.0, unk_score_offset=-3.0, score_boundary=False
    )
    lm = loaded.language_model
    assert (lm.alpha, lm.beta, lm.unk_score_offset, lm.score_boundary) == (0.25, 2.0, -3.0, False)
    assert ours.language_model.alpha == 0.5  # the saved processor's own is untouched
    # unigrams in another encoding
    text = (tmp_path / "language_model" / "unigrams.txt").read_text(encoding="utf-8")
    (tmp_path / "language_model" / "unigrams.txt").write_text(text, encoding="utf-16")
    utf16 = Wav2Vec2ProcessorWithLM.from_pretrained(tmp_path, unigram_encoding="utf-16")
    assert utf16.language_model.unigrams == ours.language_model.unigrams


def _fake_hub_cache(cache, repo, src):
    """``src``'s files as the cached snapshot of Hub repository ``repo`` (what
    ``huggingface_hub`` reads with ``local_files_only=True``)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    shutil.copytree(src, root / "snapshots" / commit)


def test_from_hub_cache(ours, tmp_path, sim_logits):
    pytest.importorskip("huggingface_hub")
    ours.save_pretrained(tmp_path / "saved")
    _fake_hub_cache(tmp_path / "cache", "someone/tiny-lm", tmp_path / "saved")
    hub = {"cache_dir": str(tmp_path / "cache"), "local_files_only": True}
    loaded = Wav2Vec2ProcessorWithLM.from_pretrained("someone/tiny-lm", **hub)
    assert_same(loaded.batch_decode(sim_logits[:2]), ours.batch_decode(sim_logits[:2]))
    decoder = load_decoder("someone/tiny-lm", **hub)
    assert decoder.labels == ours.decoder.labels
    first = unpadded(sim_logits[0])
    assert decoder.decode_beams(first)[0].text == loaded.decode(first).text


# ------------------------------------------------------------------- use_fastctc
@reference
def test_use_fastctc_keeps_settings(parts, sim_logits):
    fe, tok, labels = parts
    theirs = transformers.Wav2Vec2ProcessorWithLM(fe, tok, pyctcdecode_decoder(labels))
    theirs.decoder.reset_params(alpha=0.3, beta=0.7, unk_score_offset=-6.0, lm_score_boundary=False)
    processor = use_fastctc(theirs)
    assert type(processor) is Wav2Vec2ProcessorWithLM
    assert processor.feature_extractor is fe and processor.tokenizer is tok
    lm = processor.language_model
    assert (lm.alpha, lm.beta, lm.unk_score_offset, lm.score_boundary) == (0.3, 0.7, -6.0, False)
    assert lm.unigrams == set(small_lm.unigrams())
    kwargs = {"output_word_offsets": True, "n_best": 2}
    batch = sim_logits[:2]
    assert_same(processor.batch_decode(batch, **kwargs), theirs.batch_decode(batch, **kwargs))


def test_use_fastctc_on_a_processor_without_lm(parts, ours, sim_logits):
    fe, tok, labels = parts
    plain = transformers.Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok)
    with pytest.raises(TypeError, match="has no decoder"):
        use_fastctc(plain)
    with pytest.raises(TypeError, match="feature_extractor"):
        use_fastctc(object())
    processor = use_fastctc(plain, decoder=fastctc_decoder(labels))
    assert processor.batch_decode(sim_logits[:2]).text == ours.batch_decode(sim_logits[:2]).text
    assert use_fastctc(ours).decoder is ours.decoder


@reference
def test_as_fastctc_decoder(parts):
    labels = parts[2]
    pyctcdecode = pytest.importorskip("pyctcdecode")
    without_lm = as_fastctc_decoder(pyctcdecode.build_ctcdecoder(labels))
    assert without_lm.language_model is None and without_lm.labels[0] == ""
    decoder = fastctc_decoder(labels)
    assert as_fastctc_decoder(decoder) is decoder
    lm = pyctcdecode_decoder(labels)._language_model
    multi = pyctcdecode.decoder.BeamSearchDecoderCTC(
        pyctcdecode.Alphabet.build_alphabet(labels),
        pyctcdecode.language_model.MultiLanguageModel([lm, lm]),
    )
    with pytest.raises(TypeError, match="MultiLanguageModel"):
        as_fastctc_decoder(multi)


# --------------------------------------------------------- pipeline and after v6
@reference
def test_asr_pipeline_with_decoder(ours, theirs, model, audio, tmp_path):
    ours.save_pretrained(tmp_path)
    # loaded back, its feature extractor names the processor class (transformers 4.x needs
    # that to use a decoder in the pipeline)
    processor = Wav2Vec2ProcessorWithLM.from_pretrained(tmp_path)

    def asr(decoder):
        return transformers.pipeline(
            "automatic-speech-recognition",
            model=model,
            tokenizer=processor.tokenizer,
            feature_extractor=processor.feature_extractor,
            decoder=decoder,
        )

    fast, ref = asr(processor.decoder), asr(theirs.decoder)
    assert fast.type == ref.type == "ctc_with_lm"
    got = fast(audio[1], return_timestamps="word")
    assert got == ref(audio[1], return_timestamps="word") and got["text"]


@reference
def test_load_decoder_decodes_a_model_directory(ours, theirs, model, audio, parts, tmp_path):
    """The path without Wav2Vec2ProcessorWithLM: a model directory's decoder, fastctc alone,
    on the model's logits."""
    model.save_pretrained(tmp_path)
    ours.save_pretrained(tmp_path)
    assert {"config.json", "alphabet.json", "language_model"} <= set(os.listdir(tmp_path))
    decoder = load_decoder(tmp_path)
    fe = parts[0]
    reloaded = transformers.Wav2Vec2ForCTC.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        logits = reloaded(**fe(audio[0], sampling_rate=16000, return_tensors="pt")).logits[0]
    beams = decoder.decode_beams(logits.numpy())
    expected = theirs.decoder.decode_beams(logits.numpy())
    assert [b[0] for b in beams] == [b[0] for b in expected]
    assert [b[2] for b in beams] == [b[2] for b in expected]
    np.testing.assert_allclose([b[-1] for b in beams], [b[-1] for b in expected], atol=SCORE_TOL)
    assert decoder.decode_batch(None, [logits.numpy()]) == [theirs.decoder.decode(logits.numpy())]
    with pytest.raises(ValueError, match="is a file"):
        load_decoder(tmp_path / "config.json")
    with pytest.raises(TypeError, match="local directory"):
        load_decoder(tmp_path, revision="main")
