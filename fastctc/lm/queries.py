"""How the LM search kernel gets the scores it lacks: the query protocol.

On the cache path (:mod:`fastctc.lm.scoring`) the kernel reads scores from the tables of
:class:`~fastctc.lm.tables.KernelTables` and writes what it misses as query rows
(``Queries``, kinds ``Q_WORD``, ``Q_LM``, ``Q_PARTIAL`` of :mod:`fastctc.kernels.lm_state`).
They are answered in one of two ways, which give the same results:

* **callback**: the kernel calls :data:`RESOLVER` (a ctypes C function) with the id that
  :meth:`SearchQueries.register` gave the search and the number of queries. The callback
  takes the GIL only for that call, answers into the tables and replies ``RESOLVE_DONE``
  (go on: the tables the kernel holds have the answers) or ``RESOLVE_STALE`` (answered, but
  the tables were reallocated: return ``PENDING`` and be called again with the new ones).
* **resume**: the search is not registered (id 0), the callback replies
  ``RESOLVE_DECLINED`` and the kernel returns ``PENDING`` with the queries in place; the
  caller answers them (:meth:`~fastctc.lm.tables.KernelTables.resolve`) and calls again.

Invariants:

* the kernel sends each query at most once per batch (``add_query`` drops duplicates) and
  asks again for any it had no room for, after the others are answered;
* the tables only grow: entries are written value first, key last, and a table that must
  grow is copied into new arrays (readers keep the old ones until they return), all tables
  at once, so comparing one array's identity tells whether the kernel's copy is stale;
* an exception raised while answering (the model's, or Ctrl-C) is kept, the kernel told
  to return (``RESOLVE_DECLINED``), and the caller re-raises it (:meth:`raise_error`);
* a frame stopped for queries is resumed, not redone, when ``io[IO_RESUME] > 0``; either way
  the result is the one an uninterrupted search gives.
"""

from __future__ import annotations

import ctypes
import itertools
from typing import Any

import numpy as np

from ..kernels import lm_state as ks
from .tables import KernelTables


class SearchQueries:
    """What the resolver callback needs to answer one running search's LM queries.

    The kernel calls :data:`RESOLVER` with the id :meth:`register` gave and the number of
    queries in ``q``; the answer (``lm_beam.RESOLVE_*``) tells it whether the tables it
    holds (those of :meth:`snapshot`) now have them, or whether it must return for new ones.
    An exception raised while resolving is kept for the caller and the kernel told to return.
    """

    _live: dict[int, SearchQueries] = {}
    _next_id = itertools.count(1)

    def __init__(
        self, tables: KernelTables | None, q: np.ndarray, q_hash: np.ndarray, spell: Any
    ) -> None:
        self.tables = tables
        self.q = q
        self.q_hash = q_hash
        self.spell = spell
        self.held: tuple[Any, Any, Any] = (None, None, None)
        self.error: BaseException | None = None

    @classmethod
    def n_live(cls) -> int:
        """Searches registered now (running, or failed without unregistering: a leak)."""
        return len(cls._live)

    def register(self) -> int:
        ctx = next(self._next_id)
        self._live[ctx] = self
        return ctx

    def unregister(self, ctx: int) -> None:
        self._live.pop(ctx, None)

    def snapshot(self) -> tuple[Any, Any, Any, np.ndarray]:
        """The tables' arrays as passed to the kernel (remembered, to detect growth)."""
        t = self.tables
        assert t is not None
        self.held = (t.word_table, t.scores, t.partial)
        return t.word_table, t.scores, t.partial, t.prefix

    def answer(self, n: int) -> int:
        t = self.tables
        assert t is not None
        try:
            t.resolve(self.q[:n], self.q_hash[:n], self.spell)
        except BaseException as err:  # noqa: BLE001 - re-raised by the caller
            self.error = err
            return ks.RESOLVE_DECLINED
        w, sc, pa = self.held
        if t.word_table[0] is w[0] and t.scores[0] is sc[0] and t.partial[0] is pa[0]:
            return ks.RESOLVE_DONE  # the same arrays (tables are regrown all at once)
        return ks.RESOLVE_STALE

    def raise_error(self) -> None:
        if self.error is not None:
            err, self.error = self.error, None
            raise err


def resolve_queries(ctx: int, n: int) -> int:
    search = SearchQueries._live.get(ctx)
    if search is None:
        return ks.RESOLVE_DECLINED
    try:
        return search.answer(n)
    except BaseException as err:  # noqa: BLE001 - e.g. KeyboardInterrupt; re-raised by the caller
        search.error = err
        return ks.RESOLVE_DECLINED


#: C callback handed to the kernel: ``(search id, number of queries) -> RESOLVE_*``.
RESOLVER = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)(resolve_queries)
