"""Streaming LM decoding (``decoder.stream()``): for any chunking, ``finish()`` returns exactly
what ``decode_beams`` returns for the whole input, every field of every beam; ``partial()``
changes nothing; long streams keep bounded pools; bad input raises clearly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastctc
from tests import small_lm
from tests.conftest import random_log_probs
from tests.simulate import CHAR_LABELS, simulate_char
from tests.test_decoder import _CountLM

#: A BPE vocabulary of pieces of the small model's words.
BPE = [
    "",
    "\u2581the",
    "\u2581an",
    "na",
    "\u2581tom",
    "'s",
    "\u2581wash",
    "ed",
    "\u2581old",
    "\u2581dog",
    "\u2581",
    "s",
    "a",
    "e",
    "t",
]
CUSTOM = ["", " ", "a", "q", "b"]


_DECODERS: dict = {}
#: Kinds whose scores are cached per decoder as the search asks for them (queries spell the
#: words from the beams' tokens): fresh decoders for these, or a stream would find every
#: score cached by the offline decode and never ask.
CACHED = ("callback", "resume", "custom")


def decoder(kind: str, fresh: bool = False):
    """Decoders by kind: no model, the small 4-gram read as n-gram tables (ARPA), the same
    model's KenLM binary scored through the callback or the resume path, a BPE vocabulary
    with the n-gram tables, a custom model. Shared unless ``fresh``."""
    if kind in _DECODERS and not fresh:
        return _DECODERS[kind]
    lm = dict(unigrams=small_lm.unigrams(), alpha=0.7, beta=2.0)
    if kind == "none":
        dec = fastctc.build_ctcdecoder(CHAR_LABELS)
    elif kind == "ngram":
        dec = fastctc.build_ctcdecoder(CHAR_LABELS, kenlm_model_path=str(small_lm.ARPA), **lm)
    elif kind in ("callback", "resume"):
        dec = fastctc.build_ctcdecoder(
            CHAR_LABELS, kenlm_model_path=str(small_lm.BINARY), lm_scoring=kind, **lm
        )
    elif kind == "bpe":
        dec = fastctc.build_ctcdecoder(BPE, kenlm_model_path=str(small_lm.ARPA), **lm)
    else:
        alphabet = fastctc.alphabet.Alphabet.build_alphabet(CUSTOM)
        dec = fastctc.BeamSearchDecoderCTC(alphabet, _CountLM())
    if not fresh:
        _DECODERS[kind] = dec
    return dec


def fields(beam):
    """Every field of a beam: pyctcdecode's five and fastctc's attributes."""
    return (
        type(beam),
        beam.text,
        beam.text_frames,
        beam.logit_score,
        beam.lm_score,
        beam.last_lm_state,
        beam.tokens.dtype,
        beam.tokens.tolist(),
        beam.token_frames.tolist(),
        beam.word_confidences,
    )


def assert_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert fields(g) == fields(w)


def sentences_input(n: int, seed: int) -> np.ndarray:
    sents = small_lm.dev_sentences()
    return np.concatenate(
        [simulate_char(sents[(seed + i) % len(sents)], seed + i) for i in range(n)]
    )


def make_input(kind: str, form: str, dtype, T: int, seed: int) -> np.ndarray:
    """``T`` frames for a decoder of ``kind`` as log-probabilities, raw logits (shifted and
    scaled per row) or probabilities (float64 rows summing to 1)."""
    rng = np.random.default_rng(seed)
    C = len(decoder(kind).labels)
    if kind in ("ngram", "callback", "resume", "none") and seed % 2 == 0:
        lp = sentences_input(1 + T // 150, seed)[:T].astype(np.float64)
    else:
        lp = random_log_probs(rng, T, C, scale=3.0)
    if form == "logits":
        lp = lp * rng.uniform(0.5, 2.0) + rng.normal(0, 3, (lp.shape[0], 1))
    elif form == "probs":
        p = np.exp(lp)
        return p / p.sum(axis=1, keepdims=True)
    return lp.astype(dtype)


def chunked(x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """``x`` cut into chunks of ``sizes`` (cycled), the last one what is left."""
    out, a, k = [], 0, 0
    while a < len(x):
        b = min(len(x), a + sizes[k % len(sizes)])
        out.append(x[a:b])
        a, k = b, k + 1
    return out


def stream_decode(dec, chunks, kw, segment=None, compact_min=None, partials=0):
    s = dec.stream(**kw)
    if segment is not None:
        s.segment_frames = segment
    if compact_min is not None:
        s.compact_min = compact_min
    for c in chunks:
        s.feed(c)
        for _ in range(partials):
            s.partial()
    assert s.frames_fed == sum(len(c) for c in chunks)
    return s.finish()


KINDS = ["none", "ngram", "callback", "resume", "bpe", "custom"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS),
    form=st.sampled_from(["logprobs", "logits", "probs"]),
    dtype=st.sampled_from([np.float32, np.float64]),
    T=st.integers(1, 260),
    seed=st.integers(0, 2**16),
    sizes=st.lists(st.integers(1, 260), min_size=1, max_size=6),
    ones=st.booleans(),
    segment=st.sampled_from([1, 2, 5, 512]),
    compact_min=st.sampled_from([0, 40, 1 << 15]),
    prune_history=st.booleans(),
    hot=st.booleans(),
    width=st.sampled_from([1, 4, 12]),
)
def test_any_chunking_gives_decode_beams(
    kind, form, dtype, T, seed, sizes, ones, segment, compact_min, prune_history, hot, width
):
    fresh = kind in CACHED
    x = make_input(kind, form, dtype, T, seed)
    hotwords = None
    if hot:
        hotwords = {"custom": ["qa", "b a"], "bpe": ["tom", "old dog"]}.get(kind, ["anna", "the"])
    kw = dict(beam_width=width, prune_history=prune_history, hotwords=hotwords, token_min_logp=-6.0)
    chunks = chunked(x, [1] if ones else sizes)
    got = stream_decode(decoder(kind, fresh), chunks, kw, segment, compact_min)
    want = decoder(kind, fresh).decode_beams(x, **kw)
    assert_same(got, want)


@pytest.mark.parametrize("kind", CACHED)
@pytest.mark.parametrize("width", [1, 2, 6])
def test_words_spelled_after_compaction(kind, width):
    """Frame by frame, compacted after every frame, on fresh decoders: every word the model
    is asked about is spelled from tokens that compaction must have kept."""
    for seed in range(3):
        x = make_input(kind, "logprobs", np.float64, 120, 2 * seed + 1)
        got = stream_decode(decoder(kind, True), chunked(x, [1]), dict(beam_width=width), 1, 0)
        assert_same(got, decoder(kind, True).decode_beams(x, beam_width=width))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    sizes=st.lists(st.integers(1, 300), min_size=1, max_size=8),
    prune_history=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_long_input_any_chunking(seed, sizes, prune_history, dtype):
    """A few thousand frames of simulated speech with the 4-gram, compacted often."""
    dec = decoder("ngram")
    x = sentences_input(20, seed).astype(dtype)
    assert len(x) > 2500
    kw = dict(beam_width=24, prune_history=prune_history)
    want = dec.decode_beams(x, **kw)
    got = stream_decode(dec, chunked(x, sizes), kw, segment=64, compact_min=100)
    assert_same(got, want)


def test_one_long_chunk_and_odd_rows():
    """A chunk longer than the frames searched per kernel call (searched in pieces, on a
    worker thread), values of -inf and rows padded with -100, as decode_beams reads them."""
    dec = decoder("ngram")
    x = sentences_input(30, 8)
    assert len(x) > 4096
    x[100:103, 1:] = -np.inf
    x[200:260] = -100.0
    x[200:260, 0] = 0.0
    x[300, 5] = -np.inf
    for dtype in (np.float32, np.float64):
        y = x.astype(dtype)
        want = dec.decode_beams(y, beam_width=16)
        assert_same(stream_decode(dec, [y[:4500], y[4500:]], dict(beam_width=16)), want)
        assert_same(stream_decode(dec, chunked(y, [1, 2, 97]), dict(beam_width=16)), want)


@pytest.mark.parametrize("kind", ["ngram", "callback"])
def test_start_state_and_max_beams(kind):
    dec = decoder(kind)
    x = sentences_input(2, 3)
    first = dec.decode_beams(x[:100], beam_width=8)[0].last_lm_state
    kw = dict(beam_width=16, beam_prune_logp=-30.0, lm_start_state=first)
    want = dec.decode_beams(x[100:], max_beams=3, **kw)
    assert len(dec.decode_beams(x[100:], **kw)) > 3
    s = dec.stream(**kw)
    for c in chunked(x[100:], [17, 1, 60]):
        s.feed(c)
    assert_same(s.finish(max_beams=3), want)


def test_partial_changes_nothing_and_its_prefix_is_stable():
    dec = decoder("ngram")
    x = sentences_input(6, 11)
    kw = dict(beam_width=16)
    chunks = chunked(x, [40])
    quiet = stream_decode(dec, chunks, kw, compact_min=200)
    busy = stream_decode(dec, chunks, kw, compact_min=200, partials=3)
    assert_same(busy, quiet)
    assert_same(quiet, dec.decode_beams(x, **kw))
    # the stable prefix only grows and every final beam's text starts with it
    s = dec.stream(**kw)
    s.compact_min = 200
    stables = []
    for c in chunks:
        s.feed(c)
        p = s.partial()
        assert p.frames_fed == s.frames_fed
        assert (p.text + " ").startswith(p.stable_text + " " if p.stable_text else "")
        assert [w for w, _ in p.text_frames] == p.text.split()
        stables.append(p.stable_text)
    for a, b in zip(stables, stables[1:], strict=False):
        assert b.startswith(a)
    assert len(stables[-1].split()) > 20
    for beam in s.finish():
        assert beam.text.startswith(stables[-1])
    # the best beam's word frames so far are the final ones for the stable words
    final = quiet[0].text_frames
    n = len(stables[-1].split())
    assert p.text_frames[: n - 1] == final[: n - 1]


@pytest.mark.parametrize("kind", ["ngram", "bpe", "none"])
@pytest.mark.parametrize("prune_history", [False, True])
def test_partial_is_the_same_with_committed_history(kind, prune_history):
    """partial() of a stream compacted after every frame (its history committed) equals that
    of a stream that never compacts, after every chunk."""
    dec = decoder(kind)
    T = 1500
    x = make_input(kind, "logprobs", np.float32, T, 4 if kind != "bpe" else 5)
    kw = dict(beam_width=8, prune_history=prune_history)
    a, b = dec.stream(**kw), dec.stream(**kw)
    a.segment_frames, a.compact_min = 3, 0
    b.compact_min = 1 << 40
    for c in chunked(x, [7, 1, 30]):
        a.feed(c)
        b.feed(c)
        assert a.partial() == b.partial()
    assert a.pool_sizes["committed_tokens"] > 50 and b.pool_sizes["committed_tokens"] == 0
    assert len(a.partial().stable_text.split()) > 5
    assert_same(a.finish(), b.finish())


def test_partial_before_any_frame():
    s = decoder("ngram").stream()
    p = s.partial()
    assert p == ("", "", [], 0)


@pytest.mark.parametrize("prune_history", [True, False])
def test_long_stream_keeps_bounded_pools(prune_history):
    """23,000 frames: the search's nodes stay few (they are compacted and committed) while the
    output grows, the arrays stop growing, and the beams are still decode_beams's."""
    dec = decoder("ngram")
    x = sentences_input(140, 5)
    assert len(x) > 20000
    kw = dict(beam_width=16, prune_history=prune_history)
    s = dec.stream(**kw)
    s.compact_min = 2000
    held, caps = [], []
    for k, c in enumerate(chunked(x, [40])):
        s.feed(c)
        if k % 50 == 0:
            s.compact()
            ps = s.pool_sizes
            held.append(ps["text"] + ps["tokens"] + ps["word_frames"])
            caps.append((ps["text_capacity"], ps["tokens_capacity"], ps["word_frames_capacity"]))
    ps = s.pool_sizes
    assert ps["committed_words"] > 800 and ps["committed_tokens"] > 5000
    assert max(held) < 2500
    assert caps[-1] == caps[len(caps) // 4]
    assert_same(s.finish(), dec.decode_beams(x, **kw))
    # without compaction the same stream holds a node for everything it ever made
    s = dec.stream(**kw)
    s.compact_min = 1 << 40
    for c in chunked(x[:5000], [40]):
        s.feed(c)
    ps = s.pool_sizes
    assert ps["text"] + ps["tokens"] + ps["word_frames"] > 10000
    assert ps["committed_tokens"] == 0


def _run_schedule(dec, kw, chunks, starts, reads, compact_min, threads):
    """Feed streams together with ``feed_streams``, one chunk each per step: stream ``i``
    starts at step ``starts[i]``, is finished once its chunks run out and, when ``reads[i]``,
    has ``partial()`` read after each step. Returns the final beams by stream."""
    streams: dict = {}
    done: dict = {}
    step = 0
    while len(done) < len(chunks):
        live, feed = [], []
        for i in range(len(chunks)):
            k = step - starts[i]
            if i in done or k < 0:
                continue
            if i not in streams:
                streams[i] = dec.stream(**kw)
                streams[i].compact_min = compact_min
            if k < len(chunks[i]):
                live.append(streams[i])
                feed.append(chunks[i][k])
            else:
                done[i] = streams[i].finish()
        if live:
            dec.feed_streams(live, feed, num_threads=threads)
            for i in range(len(chunks)):
                if reads[i] and i in streams and i not in done:
                    streams[i].partial()
        step += 1
    return done


def test_feed_streams_on_threads():
    """Streams fed together on two threads, started and finished at different times, give
    decode_beams's beams for each."""
    dec = decoder("callback", fresh=True)
    xs = [sentences_input(2, k) for k in range(6)]
    kw = dict(beam_width=12)
    want = [decoder("callback", fresh=True).decode_beams(x, **kw) for x in xs]
    rng = np.random.default_rng(0)
    chunks = [chunked(x, list(rng.integers(1, 90, 5))) for x in xs]
    start = [0, 0, 2, 3, 5, 9]  # the step each stream starts at
    done = _run_schedule(dec, kw, chunks, start, [False] * len(xs), 50, 2)
    for i in range(len(xs)):
        assert_same(done[i], want[i])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["ngram", "callback", "custom"]),
    plan=st.lists(
        st.tuples(
            st.integers(1, 200),  # frames
            st.lists(st.integers(1, 80), min_size=1, max_size=4),  # chunk sizes
            st.integers(0, 4),  # the step it starts at
            st.booleans(),  # partial() after each chunk
        ),
        min_size=1,
        max_size=5,
    ),
    threads=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_feed_streams_any_schedule(kind, plan, threads, seed):
    """Streams started at random steps, fed random chunks together on 1-3 threads (partial()
    read or not), each finished when its input ends: decode_beams's beams for each."""
    fresh = kind in CACHED
    dec = decoder(kind, fresh)
    xs = [make_input(kind, "logprobs", np.float32, T, seed + i) for i, (T, *_) in enumerate(plan)]
    chunks = [chunked(x, sizes) for x, (_, sizes, _, _) in zip(xs, plan, strict=True)]
    kw = dict(beam_width=6)
    starts = [start for _, _, start, _ in plan]
    reads = [read for *_, read in plan]
    done = _run_schedule(dec, kw, chunks, starts, reads, 0, threads)
    ref = decoder(kind, fresh)
    for i, x in enumerate(xs):
        assert_same(done[i], ref.decode_beams(x, **kw))


def test_streams_are_independent():
    dec = decoder("ngram")
    x, y = sentences_input(1, 1), sentences_input(1, 2)
    a, b = dec.stream(beam_width=8), dec.stream(beam_width=8, prune_history=True)
    for k in range(0, max(len(x), len(y)), 25):
        if k < len(x):
            a.feed(x[k : k + 25])
        if k < len(y):
            b.feed(y[k : k + 25])
    assert_same(a.finish(), dec.decode_beams(x, beam_width=8))
    assert_same(b.finish(), dec.decode_beams(y, beam_width=8, prune_history=True))


# ------------------------------------------------------------------------------ bad input
@pytest.fixture
def stream():
    return decoder("none").stream()


def test_bad_chunks(stream):
    C = len(CHAR_LABELS)
    good = np.log(np.full((3, C), 1 / C))
    with pytest.raises(ValueError, match=r"chunk has 5 columns .* \(t, 29\)"):
        stream.feed(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"chunk must be 2-D .* shape \(29,\)"):
        stream.feed(good[0])
    with pytest.raises(ValueError, match=r"chunk must be 2-D .* shape \(1, 3, 29\)"):
        stream.feed(good[None])
    with pytest.raises(TypeError, match="chunk must be a floating-point array .* int64"):
        stream.feed(np.zeros((2, C), dtype=np.int64))
    with pytest.raises(ValueError, match="chunk is empty"):
        stream.feed(good[:0])
    bad = good.copy()
    bad[2, 4] = np.nan
    with pytest.raises(ValueError, match=r"chunk\[2\] \(frame 2 of the stream\) contains NaN"):
        stream.feed(bad)
    assert stream.frames_fed == 0  # refused chunks change nothing
    stream.feed(good)
    bad[:, :] = good
    bad[1, 0] = np.inf
    with pytest.raises(ValueError, match=r"chunk\[1\] \(frame 4 of the stream\)"):
        stream.feed(bad)
    with pytest.raises(TypeError, match="chunk has dtype float32 but the stream's first"):
        stream.feed(good.astype(np.float32))
    assert stream.frames_fed == 3
    assert stream.finish()[0].text == decoder("none").decode_beams(good)[0].text


def test_feeding_after_finish(stream):
    C = len(CHAR_LABELS)
    x = np.log(np.full((2, C), 1 / C))
    stream.feed(x)
    stream.finish()
    assert stream.closed
    with pytest.raises(RuntimeError, match="the stream is finished"):
        stream.feed(x)
    with pytest.raises(RuntimeError, match="the stream is finished"):
        stream.finish()
    with pytest.raises(RuntimeError, match="the stream is finished"):
        decoder("none").feed_streams([stream], [x])


def test_finish_without_frames(stream):
    with pytest.raises(ValueError, match="no frame was fed"):
        stream.finish()


@pytest.mark.parametrize(
    "kw, err, match",
    [
        (dict(beam_width=0), ValueError, "beam_width must be >= 1"),
        (dict(beam_prune_logp=1.0), ValueError, "beam_prune_logp must be <= 0"),
        (dict(token_min_logp="a"), TypeError, "token_min_logp must be a number"),
        (dict(hotword_weight=float("inf")), ValueError, "hotword_weight must be finite"),
    ],
)
def test_bad_arguments(kw, err, match):
    with pytest.raises(err, match=match):
        decoder("none").stream(**kw)


def test_bad_feed_streams():
    dec, other = decoder("none"), decoder("ngram")
    C = len(CHAR_LABELS)
    x = np.log(np.full((2, C), 1 / C))
    a, b = dec.stream(), dec.stream()
    with pytest.raises(ValueError, match=r"chunks\[1\] has 3 columns"):
        dec.feed_streams([a, b], [x, x[:, :3]])
    assert a.frames_fed == 0 and b.frames_fed == 0
    with pytest.raises(ValueError, match=r"streams\[1\] is not a stream of this decoder"):
        dec.feed_streams([a, other.stream()], [x, x])
    with pytest.raises(ValueError, match=r"streams\[1\] is listed twice"):
        dec.feed_streams([a, a], [x, x])
    with pytest.raises(ValueError, match="same length"):
        dec.feed_streams([a, b], [x])
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        dec.feed_streams([a], [x], num_threads=0)


def test_lexicon_mode_refuses_to_stream():
    dec = fastctc.build_ctcdecoder(
        CHAR_LABELS, kenlm_model_path=str(small_lm.ARPA), lexicon=["anna", "tom"]
    )
    with pytest.raises(ValueError, match="streaming is not supported in the lexicon mode"):
        dec.stream()


class _FailingLM(_CountLM):
    def score(self, prev_state, word, is_last_word=False):
        if "q" in word:
            raise KeyError("no q here")
        return super().score(prev_state, word, is_last_word)


def test_a_failing_model_leaves_the_stream_unusable():
    alphabet = fastctc.alphabet.Alphabet.build_alphabet(CUSTOM)
    dec = fastctc.BeamSearchDecoderCTC(alphabet, _FailingLM())
    q, space = np.full(5, -9.0), np.full(5, -9.0)
    q[3] = space[1] = 0.0
    s = dec.stream()
    with pytest.raises(KeyError, match="no q here"):
        s.feed(np.stack([q, space]))
    with pytest.raises(RuntimeError, match="the stream failed earlier .*KeyError"):
        s.feed(np.stack([q]))
    with pytest.raises(RuntimeError, match="the stream failed earlier"):
        s.finish()


def test_reset_params_during_a_stream_is_refused():
    dec = decoder("ngram", fresh=True)
    x = sentences_input(1, 2)
    s = dec.stream()
    s.feed(x[:50])
    dec.reset_params(alpha=0.9)
    with pytest.raises(RuntimeError, match="parameters changed"):
        s.feed(x[50:])
    with pytest.raises(RuntimeError, match="parameters changed"):
        s.finish()
    s = dec.stream()  # a stream started after the change is fine
    s.feed(x)
    assert_same(s.finish(), dec.decode_beams(x))
