"""Streaming prefix beam search: any chunking gives beam_search's result to the bit,
partial() changes nothing, bad chunks are refused, the search state does not grow with the
stream."""

from __future__ import annotations

import copy
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastctc
from tests.reference_decode import prefix_beam_ref

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
heavy = pytest.mark.skipif(NO_JIT, reason="too slow with NUMBA_DISABLE_JIT=1")
INF = math.inf


# --- inputs


def normalise(x):
    with np.errstate(divide="ignore"):
        m = x.max(1, keepdims=True)
        return x - (m + np.log(np.exp(x - m).sum(1, keepdims=True)))


def make_input(rng, kind, T, V, blank, dtype=np.float64, neg_inf=0.0):
    """Log-probabilities of one of a few shapes: ``flat`` (all classes alike), ``peaked``
    (one class near 1 per frame, blank half the time), ``ambiguous`` (peaked, and one frame
    in five has a second class almost as likely); ``neg_inf`` of the entries set to -inf."""
    if kind == "flat":
        x = rng.normal(size=(T, V)) * 0.5
    else:
        best = rng.integers(V, size=T)
        best[rng.random(T) < 0.5] = blank
        x = rng.normal(size=(T, V)) - 4.0
        x[np.arange(T), best] = 4.0
        if kind == "ambiguous":
            amb = np.flatnonzero(rng.random(T) < 0.2)
            x[amb, rng.integers(V, size=amb.size)] = 4.0 + rng.normal(size=amb.size) * 0.3
    if neg_inf:
        x[rng.random((T, V)) < neg_inf] = -INF
        x[np.isneginf(x).all(1), blank] = 0.0  # keep a finite entry per frame
    return normalise(x).astype(dtype)


def cuts(rng, T, style):
    """Chunk sizes summing to ``T``: single frames, random sizes, or a mix."""
    sizes = []
    left = T
    while left:
        if style == "ones" or (style == "mix" and rng.random() < 0.3):
            n = 1
        else:
            n = int(rng.integers(1, left + 1)) if rng.random() < 0.2 else int(rng.integers(1, 65))
        n = min(n, left)
        sizes.append(n)
        left -= n
    return sizes


def stream_decode(lp, sizes, partial_every=0, **kw):
    s = fastctc.BeamStream(**kw)
    t = 0
    for i, n in enumerate(sizes):
        s.feed(lp[t : t + n])
        t += n
        if partial_every and i % partial_every == 0:
            s.partial()
    return s.finish()


def assert_same(got, ref):
    assert len(got) == len(ref)
    for g, r in zip(got, ref, strict=True):
        assert g.tokens.dtype == r.tokens.dtype and g.timesteps.dtype == r.timesteps.dtype
        assert g.tokens.tolist() == r.tokens.tolist()
        assert g.timesteps.tolist() == r.timesteps.tolist()
        assert type(g.log_prob) is float and g.log_prob == r.log_prob  # bit-identical


# --- exactness


@heavy
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["flat", "peaked", "ambiguous"]),
    V=st.sampled_from([2, 5, 29, 1000]),
    T=st.one_of(st.integers(1, 40), st.integers(41, 400), st.integers(2000, 4000)),
    blank_last=st.booleans(),
    K=st.one_of(st.integers(1, 8), st.sampled_from([16, 32, 64])),
    top=st.integers(1, 4),
    prune=st.sampled_from([-10.0, -3.0, -INF]),
    tmin=st.sampled_from([-5.0, -1.5, -INF]),
    float32=st.booleans(),
    neg_inf=st.sampled_from([0.0, 0.0, 0.3]),
    style=st.sampled_from(["ones", "random", "mix"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_chunking_equals_beam_search(
    kind, V, T, blank_last, K, top, prune, tmin, float32, neg_inf, style, seed
):
    rng = np.random.default_rng(seed)
    if V == 1000 or K >= 32:
        T = min(T, 600)  # keeps an example under a second
    blank = V - 1 if blank_last else 0
    dtype = np.float32 if float32 else np.float64
    lp = make_input(rng, kind, T, V, blank, dtype, neg_inf)
    kw = dict(
        beam_width=K,
        blank=-1 if blank_last else 0,
        top_paths=min(top, K),
        beam_prune_logp=prune,
        token_min_logp=tmin,
    )
    sizes = cuts(rng, T, style)
    try:
        ref = fastctc.beam_search(lp, **kw)
    except ValueError as e:  # every prefix died: the stream must say so too
        assert "probability zero" in str(e)
        with pytest.raises(ValueError, match="probability zero"):
            stream_decode(lp, sizes, **kw)
        return
    assert_same(stream_decode(lp, sizes, **kw), ref)


@pytest.mark.parametrize("blank", [0, 4])
def test_equals_the_numpy_reference(blank):
    """Independent of the offline kernel: the plain-Python reference search."""
    rng = np.random.default_rng(11)
    for trial in range(6):
        lp = make_input(rng, ["flat", "peaked", "ambiguous"][trial % 3], 60, 5, blank)
        sizes = cuts(rng, 60, "mix")
        got = stream_decode(lp, sizes, beam_width=6, blank=blank, top_paths=3)
        ref = prefix_beam_ref(lp, 6, blank, 3, -10.0, -5.0)
        assert len(got) == len(ref)
        for g, (tokens, times, score) in zip(got, ref, strict=True):
            assert tuple(g.tokens.tolist()) == tokens
            assert tuple(g.timesteps.tolist()) == times
            assert g.log_prob == pytest.approx(score, rel=1e-9, abs=1e-9)


@heavy
def test_long_stream_with_compaction():
    """Many compactions (small initial tree, thousands of one- to few-frame chunks)."""
    rng = np.random.default_rng(3)
    lp = make_input(rng, "ambiguous", 6000, 29, 0)
    kw = dict(beam_width=24, top_paths=5)
    assert_same(stream_decode(lp, cuts(rng, 6000, "mix"), **kw), fastctc.beam_search(lp, **kw))


def test_chunk_may_hold_everything_or_one_frame():
    rng = np.random.default_rng(4)
    lp = make_input(rng, "flat", 50, 7, 0)
    ref = fastctc.beam_search(lp, beam_width=10, top_paths=4)
    assert_same(stream_decode(lp, [50], beam_width=10, top_paths=4), ref)
    assert_same(stream_decode(lp, [1] * 50, beam_width=10, top_paths=4), ref)


def test_no_frames_is_beam_search_of_no_frames():
    ref = fastctc.beam_search(np.zeros((0, 5)))
    assert_same(fastctc.BeamStream().finish(), ref)
    assert_same(fastctc.BeamStream(num_classes=5).finish(), ref)


def test_lists_and_float16_are_taken_as_beam_search_takes_them():
    rng = np.random.default_rng(5)
    lp = make_input(rng, "peaked", 20, 4, 0)
    s = fastctc.BeamStream(beam_width=4)
    s.feed(lp[:7].tolist())
    s.feed(lp[7:].tolist())
    assert_same(s.finish(), fastctc.beam_search(lp, beam_width=4))
    h = lp.astype(np.float16)
    s = fastctc.BeamStream(beam_width=4)
    s.feed(h[:3])
    s.feed(h[3:])
    assert_same(s.finish(), fastctc.beam_search(h, beam_width=4))


def test_without_timesteps():
    rng = np.random.default_rng(6)
    lp = make_input(rng, "ambiguous", 300, 29, 0)
    s = fastctc.BeamStream(beam_width=8, top_paths=3, timesteps=False)
    for i in range(0, 300, 7):
        s.feed(lp[i : i + 7])
    got = s.finish()
    ref = fastctc.beam_search(lp, beam_width=8, top_paths=3)
    assert [g.tokens.tolist() for g in got] == [r.tokens.tolist() for r in ref]
    assert [g.log_prob for g in got] == [r.log_prob for r in ref]
    assert all(g.timesteps is None for g in got)
    assert s._kept is None


# --- partial()


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["flat", "peaked", "ambiguous"]),
    T=st.integers(1, 300),
    K=st.integers(1, 16),
    seed=st.integers(0, 2**32 - 1),
)
def test_partial_changes_nothing_and_its_stable_prefix_is_final(kind, T, K, seed):
    rng = np.random.default_rng(seed)
    lp = make_input(rng, kind, T, 6, 0)
    sizes = cuts(rng, T, "mix")
    plain = stream_decode(lp, sizes, beam_width=K, top_paths=K)
    s = fastctc.BeamStream(beam_width=K, top_paths=K)
    partials = []
    t = 0
    for n in sizes:
        s.feed(lp[t : t + n])
        t += n
        for _ in range(int(rng.integers(0, 3))):
            partials.append(s.partial())
        if rng.random() < 0.2:  # the best prefix now is the best of a search ending here
            now = s.partial()
            best = copy.deepcopy(s).finish()[0]
            assert now.tokens.tolist() == best.tokens.tolist()
            assert now.log_prob == best.log_prob
            assert now.frames_fed == t
    last = s.partial()
    got = s.finish()
    assert_same(got, plain)
    # top_paths = beam_width: every live beam at the end; all descend from every earlier
    # state's beams, so all start with each stable prefix
    for p in partials:
        assert 0 <= p.stable <= p.tokens.size
        assert p.stable_tokens.tolist() == p.tokens[: p.stable].tolist()
        for h in got:
            assert h.tokens[: p.stable].tolist() == p.stable_tokens.tolist()
    # after the last frame, the best prefix is finish()'s first hypothesis
    assert last.frames_fed == T
    assert last.tokens.tolist() == got[0].tokens.tolist()
    assert last.log_prob == got[0].log_prob
    assert s.partial().tokens.tolist() == got[0].tokens.tolist()  # still readable


def test_partial_before_any_frame():
    p = fastctc.BeamStream().partial()
    assert p.tokens.tolist() == [] and p.stable == 0 and p.log_prob == 0.0 and p.frames_fed == 0


def test_partial_stable_prefix_grows_on_confident_input():
    rng = np.random.default_rng(7)
    lp = make_input(rng, "peaked", 400, 29, 0)
    s = fastctc.BeamStream(beam_width=8)
    s.feed(lp[:200])
    a = s.partial()
    s.feed(lp[200:])
    b = s.partial()
    assert 0 < a.stable and a.stable < b.stable
    assert b.tokens[: a.stable].tolist() == a.stable_tokens.tolist()


# --- many streams


@pytest.mark.parametrize("num_threads", [1, 2, None])
def test_feed_streams_equals_beam_search(num_threads):
    rng = np.random.default_rng(8)
    specs = [(29, 8, 0, 500), (5, 3, -1, 120), (1000, 16, 0, 90), (29, 1, 0, 40), (7, 64, 3, 80)]
    inputs = [make_input(rng, "ambiguous", T, V, b % V) for V, _, b, T in specs]
    streams = [
        fastctc.BeamStream(beam_width=K, blank=b, top_paths=min(K, 3)) for _, K, b, _ in specs
    ]
    pos = [0] * len(specs)
    while any(p < x.shape[0] for p, x in zip(pos, inputs, strict=True)):
        active = [i for i, x in enumerate(inputs) if pos[i] < x.shape[0]]
        chunks = []
        for i in active:
            n = int(rng.integers(1, 60))
            chunks.append(inputs[i][pos[i] : pos[i] + n])
            pos[i] += chunks[-1].shape[0]
        fastctc.feed_streams([streams[i] for i in active], chunks, num_threads=num_threads)
    for (_, K, b, T), x, s in zip(specs, inputs, streams, strict=True):
        assert s.frames_fed == T
        ref = fastctc.beam_search(x, beam_width=K, blank=b, top_paths=min(K, 3))
        assert_same(s.finish(), ref)


def test_feed_streams_refuses_before_moving_any_stream():
    rng = np.random.default_rng(9)
    a = make_input(rng, "peaked", 30, 5, 0)
    s1, s2 = fastctc.BeamStream(beam_width=4), fastctc.BeamStream(beam_width=4)
    bad = a[10:20].copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"chunks\[1\]\[3\] \(frame 3 of the stream\)"):
        fastctc.feed_streams([s1, s2], [a[:10], bad])
    assert s1.frames_fed == 0 and s2.frames_fed == 0 and s1.num_classes is None
    with pytest.raises(ValueError, match="same length"):
        fastctc.feed_streams([s1, s2], [a[:10]])
    with pytest.raises(ValueError, match=r"streams\[0\] and streams\[1\] are the same"):
        fastctc.feed_streams([s1, s1], [a[:10], a[10:20]])
    with pytest.raises(TypeError, match=r"streams\[1\] must be a BeamStream"):
        fastctc.feed_streams([s1, "x"], [a[:10], a[10:20]])
    fastctc.feed_streams([], [])
    fastctc.feed_streams([s1, s2], [a[:10], a[:20]])
    fastctc.feed_streams([s1], [a[10:]])
    assert_same(s1.finish(), fastctc.beam_search(a, beam_width=4))
    assert_same(s2.finish(), fastctc.beam_search(a[:20], beam_width=4))


def test_docstring_examples():
    import doctest

    import fastctc.beam_stream

    result = doctest.testmod(fastctc.beam_stream, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


# --- bad input


def test_bad_chunks_are_refused_and_change_nothing():
    rng = np.random.default_rng(10)
    lp = make_input(rng, "ambiguous", 40, 6, 0)
    s = fastctc.BeamStream(beam_width=5, top_paths=2)
    with pytest.raises(ValueError, match=r"chunk must be 2-D .*got shape \(6,\)"):
        s.feed(lp[0])
    with pytest.raises(ValueError, match=r"chunk must hold at least one frame; got shape \(0, 6\)"):
        s.feed(lp[:0])
    with pytest.raises(ValueError, match="at least one class"):
        s.feed(np.zeros((3, 0)))
    with pytest.raises(TypeError, match="chunk must be a floating-point array"):
        s.feed(np.zeros((3, 6), np.int64))
    s.feed(lp[:10])
    with pytest.raises(
        ValueError, match=r"chunk must have shape \(frames, 6\).*got shape \(4, 5\)"
    ):
        s.feed(lp[10:14, :5])
    with pytest.raises(
        TypeError, match="dtype float32 but the stream's earlier chunks have float64"
    ):
        s.feed(lp[10:14].astype(np.float32))
    for bad_value in (np.nan, np.inf):
        bad = lp[10:20].copy()
        bad[4, 1] = bad_value
        with pytest.raises(ValueError, match=r"chunk\[4\] \(frame 14 of the stream\) contains NaN"):
            s.feed(bad)
    assert s.frames_fed == 10
    s.feed(lp[10:])
    assert_same(s.finish(), fastctc.beam_search(lp, beam_width=5, top_paths=2))


def test_feeding_after_finish_is_refused():
    s = fastctc.BeamStream(beam_width=3)
    s.feed(np.log(np.full((4, 3), 1 / 3)))
    first = s.finish()
    with pytest.raises(RuntimeError, match="finished"):
        s.feed(np.log(np.full((4, 3), 1 / 3)))
    with pytest.raises(RuntimeError, match="finished"):
        fastctc.feed_streams([s], [np.log(np.full((4, 3), 1 / 3))])
    assert s.finished
    assert_same(s.finish(), first)


def test_dead_stream():
    lp = np.log(np.full((6, 3), 1 / 3))
    lp[3] = -INF
    with pytest.raises(ValueError, match="probability zero after frame 3"):
        fastctc.beam_search(lp)
    s = fastctc.BeamStream()
    s.feed(lp[:2])
    with pytest.raises(
        ValueError, match=r"probability zero after frame 3 of the stream \(chunk\[1\]"
    ):
        s.feed(lp[2:])
    with pytest.raises(RuntimeError, match="cannot go on"):
        s.feed(lp[:1])
    with pytest.raises(RuntimeError, match="cannot go on"):
        s.finish()


def test_search_arguments_are_checked_as_beam_search_checks_them():
    for kw, exc, msg in [
        (dict(beam_width=0), ValueError, "beam_width must be >= 1"),
        (dict(beam_width=2.0), TypeError, "beam_width must be an integer"),
        (dict(beam_width=4, top_paths=5), ValueError, "top_paths must be in"),
        (dict(beam_prune_logp=1.0), ValueError, "beam_prune_logp must be <= 0"),
        (dict(token_min_logp=math.nan), ValueError, "token_min_logp must not be NaN"),
        (dict(blank="0"), TypeError, "blank must be an integer"),
        (dict(num_classes=0), ValueError, "num_classes must be >= 1"),
        (dict(blank=5, num_classes=5), ValueError, "blank must be in"),
        (dict(timesteps=1), TypeError, "timesteps must be True or False"),
    ]:
        with pytest.raises(exc, match=msg):
            fastctc.BeamStream(**kw)
    s = fastctc.BeamStream(blank=7)  # checked against V at the first chunk
    with pytest.raises(ValueError, match="blank must be in"):
        s.feed(np.zeros((2, 5)))
    assert s.num_classes is None
    s = fastctc.BeamStream(num_classes=5)
    with pytest.raises(ValueError, match=r"shape \(frames, 5\)"):
        s.feed(np.zeros((2, 4)))


# --- bounded state


def tree_nodes(s):
    return s._search.tree.parent.shape[0]


@heavy
def test_search_state_does_not_grow_with_the_stream():
    """100,000 frames of confident output (every alternative more than ``-beam_prune_logp``
    below the best path): the beams share all but their last few tokens, and the tree keeps
    the capacity it started with while the committed tokens grow."""
    rng = np.random.default_rng(12)
    K = 16
    s = fastctc.BeamStream(beam_width=K, num_classes=29, timesteps=False)
    start = tree_nodes(s)
    caps = []
    for _ in range(100):
        x = make_input(rng, "peaked", 1000, 29, 0)
        x = normalise(np.where(x < -1.0, x * 4.0, x))  # alternatives far below the prune
        s.feed(x)
        search = s._search
        caps.append((tree_nodes(s), search.ext.score.shape[0], search.tw.cands.shape[0]))
        assert search.ints[0] <= tree_nodes(s)
    assert {c[0] for c in caps} == {start} and start <= max(1024, 4 * (K + 1))
    assert caps[0][1:] == caps[-1][1:]  # per-frame work arrays: fixed by K and V
    p = s.partial()
    assert p.stable > 30_000 and p.tokens.size - p.stable < 50
    assert s._search.ints[2] > 30_000  # committed, out of the tree


def reached_nodes(tokens_of_beams, stable):
    """Distinct prefixes of the beams longer than ``stable``, and the shared one."""
    seen = {()}
    for toks in tokens_of_beams:
        for k in range(stable + 1, len(toks) + 1):
            seen.add(tuple(toks[stable:k]))
    return len(seen)


@heavy
def test_compaction_keeps_exactly_the_nodes_the_beams_reach():
    """On ambiguous input the beams keep old differences; after a compaction the tree holds
    the distinct prefixes of the live beams below their shared prefix, nothing else."""
    from fastctc.kernels.prefix_beam import _compact

    rng = np.random.default_rng(13)
    K = 12
    lp = make_input(rng, "ambiguous", 3000, 29, 0)
    s = fastctc.BeamStream(beam_width=K, top_paths=K, timesteps=False)
    for i in range(0, 3000, 100):
        s.feed(lp[i : i + 100])
        before = s.partial()
        x = s._search
        t, ints = x.tree, x.ints
        n, committed, n_comm = _compact(
            *(t.parent, t.token, t.beam_of, t.h_key, t.h_val),
            *(x.beams.node, ints[1], ints[0], x.committed, ints[2], 29),
        )
        ints[0], ints[2] = n, n_comm
        s._search = x._replace(committed=committed)
        after = s.partial()
        assert after.tokens.tolist() == before.tokens.tolist()
        assert (after.stable, after.log_prob) == (before.stable, before.log_prob)
        assert s._search.ints[2] == before.stable  # committed: the shared prefix
    beams = [h.tokens.tolist() for h in s.finish()]
    assert len(beams) == s._search.ints[1] > 1
    assert s._search.ints[0] == reached_nodes(beams, before.stable)
    ref = fastctc.beam_search(lp, beam_width=K, top_paths=K)
    assert beams == [h.tokens.tolist() for h in ref]
