"""Scratch buffers reused between calls."""

import numpy as np

from fastctc import _scratch


def _empty_pool(monkeypatch):
    """Run the test on an empty pool of its own."""
    monkeypatch.setattr(_scratch, "_free", [])
    monkeypatch.setattr(_scratch, "_sizes", [])
    monkeypatch.setattr(_scratch, "_kept", [0])


def test_take_gives_requested_shape_and_dtype():
    a = _scratch.take(1000, np.float32)
    assert a.shape == (1000,) and a.dtype == np.float32
    _scratch.give(a)


def test_buffers_are_reused_and_never_shared(monkeypatch):
    _empty_pool(monkeypatch)
    a = _scratch.take(4096)
    b = _scratch.take(4096)
    assert not np.shares_memory(a, b)  # both handed out at once
    _scratch.give(a)
    c = _scratch.take(4000, np.float32)
    assert np.shares_memory(a, c)  # a came back and is big enough
    _scratch.give(b)
    _scratch.give(c)


def test_small_request_does_not_take_a_large_buffer(monkeypatch):
    _empty_pool(monkeypatch)
    big = _scratch.take(100_000)
    _scratch.give(big)
    small = _scratch.take(10)
    assert not np.shares_memory(small, big)
    half = _scratch.take(60_000)
    assert np.shares_memory(half, big)
    _scratch.give(small)
    _scratch.give(half)


def test_kept_bytes_are_capped(monkeypatch):
    _empty_pool(monkeypatch)
    monkeypatch.setattr(_scratch, "MAX_BYTES", 10_000)
    for n in (100, 500, 2000):  # float64: 800, 4000 and 16000 bytes
        _scratch.give(_scratch.take(n))
    assert sorted(a.nbytes for a in _scratch._free) == [800, 4000]


def test_lent_array_returns_only_when_every_view_is_gone(monkeypatch):
    _empty_pool(monkeypatch)
    a = _scratch.lend((3, 4), np.float32)
    assert a.shape == (3, 4) and a.dtype == np.float32 and a.flags.writeable
    view = a[1:]
    del a
    assert _scratch._free == []  # the view still uses the memory
    view[:] = 1.0
    del view
    assert len(_scratch._free) == 1
    b = _scratch.lend((12,), np.float32)
    assert len(_scratch._free) == 0  # reused
    del b
