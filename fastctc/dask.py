"""Decoding on a Dask cluster: :func:`decode`, and ``fastctc decode --scheduler``.

The client lists the inputs and sends them out in tasks of ``batch_size`` utterances (files
travel as their names and are read by the workers; arrays travel with their task). Each
worker process builds its decoder once, from a small :class:`Recipe` (labels and the options
of ``fastctc decode``), keeps it for the next tasks, and decodes one batch at a time on
``threads`` of fastctc's own threads. Results come back in completion order as the records
``fastctc decode`` writes (the same fields, built by the same code).

A worker that dies loses nothing: distributed runs its unfinished tasks again on the other
workers (a task whose workers died more than ``distributed.scheduler.allowed-failures``
times, 3 by default, is given up: ``KilledWorker``), and the client passes each utterance id
on once however often its batch ran.

Deploy one worker process per machine (``dask worker ADDRESS --nworkers 1 --nthreads 1``): it
uses every core of its machine through fastctc's threads, and holds one copy of the language
model. Input files, the language model and ``--unigrams`` must be readable by the workers at
the same paths (relative paths are taken from the client's working directory).

``import fastctc`` does not import this module, and this module imports dask only when one of
its functions is called (``pip install "fastctc[dask]"``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import io as fio
from .batch import available_cores

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

__all__ = [
    "Problem",
    "Recipe",
    "connect",
    "decode",
    "decoder_builds",
    "make_recipe",
    "start_local",
    "stream",
]

#: Where an in-memory input says it came from: ``<memory>[id]`` in records and messages.
MEMORY = Path("<memory>")
#: Most bytes (as float32) of in-memory arrays sent in one task.
TASK_BYTES = 8 << 20
#: Decoders kept per worker process (the oldest recipe's goes first).
MAX_DECODERS = 4


class Problem(NamedTuple):
    """An input that could not be decoded: where it is and why (as ``fastctc decode`` says)."""

    where: str
    reason: str


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ImportError(
            'dask.distributed is not installed; pip install "fastctc[dask]".'
        ) from None
    return distributed


# ---------------------------------------------------------------------------- the recipe


def _decode_defaults() -> dict[str, Any]:
    """The options of ``fastctc decode`` that a worker needs, with their defaults."""
    from .cli import build_parser

    ns = build_parser().parse_args(["decode", "-", "--labels", "-"])
    drop = {"command", "func", "inputs", "labels", "blank", "output", "format", "resume"}
    drop |= {"refs", "strict", "quiet", "batch_size", "shard", "scheduler"}
    return {k: v for k, v in vars(ns).items() if k not in drop}


@dataclass(frozen=True)
class Recipe:
    """What a worker builds its decoder from, and how it reads and reports its inputs.

    ``labels`` with the ``blank`` index, and ``options``: ``(name, value)`` pairs of the
    options of ``fastctc decode`` (``beam_width``, ``lm``, ``threads``, ``input_kind``, ...;
    see :func:`make_recipe`). Equal recipes share a worker's decoder.
    """

    labels: tuple[str, ...]
    blank: int
    options: tuple[tuple[str, Any], ...]

    def namespace(self) -> argparse.Namespace:
        """The options as the command line's parsed arguments."""
        ns = argparse.Namespace(**dict(self.options))
        if ns.hotwords is not None:
            ns.hotwords = list(ns.hotwords)
        return ns


def make_recipe(
    labels: Sequence[str] | str | os.PathLike[str], blank: int | None = None, **options: Any
) -> Recipe:
    """A :class:`Recipe` from labels (a list, or a labels file as ``--labels`` reads it) and
    options named as the arguments of ``fastctc decode`` (``--beam-width`` is
    ``beam_width``): ``decoder``, ``beam_width``, ``beam_prune_logp``, ``token_min_logp``,
    ``threads``, ``nbest``, ``lm``, ``unigrams``, ``alpha``, ``beta``, ``unk_score_offset``,
    ``hotwords``, ``hotword_weight``, ``input_kind``, ``frame_shift``, ``max_bytes``; those not
    given take the command line's defaults. Paths become absolute.

    Raises
    ------
    TypeError
        An option that ``fastctc decode`` does not have.
    ValueError
        No blank given and no label named like one; a blank outside the labels.

    Examples
    --------
    >>> r = make_recipe(["", " ", "a", "b"], beam_width=16)
    >>> r.blank, r.namespace().beam_width, r.namespace().lm
    (0, 16, None)
    """
    if isinstance(labels, (str, os.PathLike)):
        labels = fio.read_labels(labels)
    labels = tuple(labels)
    if blank is None:
        blank = fio.find_blank(labels)
        if blank is None:
            raise ValueError(
                f"cannot tell which of the {len(labels)} labels is the blank; pass blank=INDEX."
            )
    if not -len(labels) <= blank < len(labels):
        raise ValueError(f"blank={blank} is outside the {len(labels)} labels.")
    values = _decode_defaults()
    unknown = sorted(set(options) - set(values))
    if unknown:
        raise TypeError(
            f"unknown option(s) {', '.join(unknown)}; fastctc.dask takes {', '.join(values)}."
        )
    values.update(options)
    for name in ("lm", "unigrams"):
        if values[name] is not None and values[name] != "default":
            values[name] = os.path.abspath(values[name])
    if values["hotwords"] is not None:
        values["hotwords"] = tuple(values["hotwords"])
    return Recipe(labels, blank % len(labels), tuple(sorted(values.items())))


# ---------------------------------------------------------------------------- worker side

_build_lock = threading.Lock()
_decode_lock = threading.Lock()
_decoders: OrderedDict[Recipe, Any] = OrderedDict()
_builds = 0


def decoder_builds() -> int:
    """How many decoders this process has built for :func:`decode` (one per worker process
    and recipe; ``client.run(fastctc.dask.decoder_builds)`` asks every worker)."""
    return _builds


def _worker_decoder(recipe: Recipe) -> Any:
    """This process's decoder for ``recipe``: built on first use, then kept."""
    global _builds
    from .cli import make_decoder

    with _build_lock:
        decoder = _decoders.get(recipe)
        if decoder is None:
            _, decoder = make_decoder(recipe.namespace(), list(recipe.labels), recipe.blank)
            _builds += 1
            _decoders[recipe] = decoder
            while len(_decoders) > MAX_DECODERS:
                _decoders.popitem(last=False)
        return decoder


class _Sink:
    """Collects what the command line's batch step writes and reports, in its order."""

    def __init__(self) -> None:
        self.out: list[dict[str, Any] | Problem] = []
        self.utterances = self.frames = 0

    def write(self, record: dict[str, Any]) -> None:
        self.out.append(record)

    def problem(self, where: str, reason: str) -> bool:
        self.out.append(Problem(where, reason))
        return False  # the client decides whether to stop


def _decode_task(
    recipe: Recipe, items: list[tuple[fio.Source, Any]], base: str
) -> list[dict[str, Any] | Problem]:
    """A task: read (or check) a batch of utterances, decode them and return their records
    and problems. ``items`` pairs each source with its array, or with None for a file (read
    here, relative to ``base``)."""
    from .cli import _BATCH_BYTES, _batch_bytes, _decode_and_write

    decoder = _worker_decoder(recipe)
    args = recipe.namespace()
    sink = _Sink()
    ready: list[tuple[fio.Source, np.ndarray]] = []
    reader = fio.MatrixReader(len(recipe.labels), args.input_kind, args.max_bytes)
    try:
        for src, arr in items:
            try:
                if arr is None:
                    lp = reader(src._replace(path=Path(base, src.path)))
                else:
                    lp = fio.to_log_probs(np.asarray(arr), len(recipe.labels), args.input_kind)
            except (ValueError, TypeError) as exc:
                sink.problem(src.where, str(exc))
                continue
            ready.append((src, lp))
    finally:
        reader.close()
    with _decode_lock:  # one batch at a time, on all of the process's decoding threads
        batch: list[tuple[fio.Source, np.ndarray]] = []
        for src, lp in ready:
            if batch and _batch_bytes(batch, lp) > _BATCH_BYTES:
                _decode_and_write(batch, decoder, sink, sink, {}, args)  # type: ignore[arg-type]
                batch = []
            batch.append((src, lp))
        if batch:
            _decode_and_write(batch, decoder, sink, sink, {}, args)  # type: ignore[arg-type]
    return sink.out


# ---------------------------------------------------------------------------- client side


def _default_threads(client: Client) -> int | None:
    """Decoding threads per worker when none are asked for: a share of this machine's cores
    for the workers of a local cluster, else None (all the cores of a worker's machine)."""
    from distributed import LocalCluster

    cluster = getattr(client, "cluster", None)
    if isinstance(cluster, LocalCluster):
        return max(1, available_cores() // max(1, len(cluster.worker_spec)))
    return None


def _batches(
    items: Iterable[tuple[fio.Source, Any]], batch_size: int
) -> Iterator[list[tuple[fio.Source, Any]]]:
    """Consecutive batches of ``batch_size`` items, in-memory ones under :data:`TASK_BYTES`."""
    batch: list[tuple[fio.Source, Any]] = []
    nbytes = 0
    for src, arr in items:
        size = 0 if arr is None else 4 * int(np.size(arr))
        if batch and nbytes + size > TASK_BYTES:
            yield batch
            batch, nbytes = [], 0
        batch.append((src, arr))
        nbytes += size
        if len(batch) >= batch_size:
            yield batch
            batch, nbytes = [], 0
    if batch:
        yield batch


def stream(
    client: Client,
    recipe: Recipe,
    items: Iterable[tuple[fio.Source, Any]],
    *,
    batch_size: int = 64,
    max_in_flight: int | None = None,
) -> Iterator[tuple[int, list[dict[str, Any] | Problem]]]:
    """Decode ``items`` (pairs of a :class:`fastctc.io.Source` and its array, or None to read
    the file on a worker) and yield, for each batch in completion order, its size and its
    records and problems (input order within the batch). At most ``max_in_flight`` tasks
    are out at a time (default: four per worker thread, at least 8), so that the client
    holds few arrays and the scheduler few tasks. A batch comes back once, also when a worker
    died running it (distributed runs it again on another). Unfinished tasks are cancelled
    when the iteration stops.

    Raises
    ------
    Exception
        A task's error (a problem with an input is not an error: it is a :class:`Problem`).
    """
    distributed = _distributed()
    base = os.getcwd()
    token = uuid.uuid4().hex[:12]
    batches = _batches(items, batch_size)
    pending: dict[Any, int] = {}
    done = distributed.as_completed(loop=client.loop)
    count = 0

    def window() -> int:
        if max_in_flight is not None:
            return max_in_flight
        return max(8, 4 * sum(client.nthreads().values()))

    def submit() -> None:
        nonlocal count
        limit = window()
        while len(pending) < limit:
            batch = next(batches, None)
            if batch is None:
                return
            future = client.submit(
                _decode_task, recipe, batch, base, key=f"fastctc-decode-{token}-{count}"
            )
            count += 1
            pending[future] = len(batch)
            done.add(future)

    try:
        submit()
        for future in done:
            n = pending.pop(future)
            outcomes = future.result()
            future.release()
            submit()
            yield n, outcomes
    finally:
        if pending:
            client.cancel(list(pending))


def _items(inputs: Any, skip_ids: Container[str]) -> Iterator[tuple[str, Any]]:
    """What to do with each input: ``("decode", (source, array or None))``, ``("skip",
    source)`` for an id in ``skip_ids``, ``("duplicate", Problem)`` for an id seen before and
    ``("problem", Problem)`` for a path that cannot be listed."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    elif isinstance(inputs, Mapping):
        inputs = inputs.items()
    seen: dict[str, str] = {}
    for item in inputs:
        if isinstance(item, (fio.Source, fio.InputProblem)):
            pairs: Iterable[Any] = [(item, None)]
        elif isinstance(item, (str, os.PathLike)):
            pairs = ((s, None) for s in fio.list_sources([item]))
        else:
            uid, arr = item
            pairs = [(fio.Source(str(uid), MEMORY, str(uid)), arr)]
        for src, arr in pairs:
            if isinstance(src, fio.InputProblem):
                yield "problem", Problem(src.where, src.reason)
            elif src.uid in skip_ids:
                yield "skip", src
            elif src.uid in seen:
                reason = f"duplicate id {src.uid!r} (first in {seen[src.uid]})"
                yield "duplicate", Problem(src.where, reason)
            else:
                seen[src.uid] = src.where
                yield "decode", (src, arr)


def decode(
    client: Client,
    inputs: Any,
    labels: Sequence[str] | str | os.PathLike[str],
    *,
    blank: int | None = None,
    skip_ids: Container[str] = (),
    on_problem: Callable[[str, str], None] | None = None,
    batch_size: int = 64,
    max_in_flight: int | None = None,
    **options: Any,
) -> Iterator[dict[str, Any]]:
    """Decode on a Dask cluster; yield the records of ``fastctc decode`` as they complete.

    Parameters
    ----------
    client : distributed.Client
        A client of the cluster. Each worker process builds the decoder once and uses
        ``threads`` decoding threads (default: every core of its machine; for a
        ``LocalCluster``, the cores divided among its workers).
    inputs : path, sequence of paths, mapping of id to array, or sequence of (id, array)
        ``.npy``/``.npz`` files and folders of them, read by the workers as ``fastctc
        decode`` reads them (at the same path), and ``(T, C)`` arrays sent with the tasks.
    labels : sequence of str or path
        The labels (or a labels file as ``--labels`` reads it); ``blank`` is the blank's
        index (default: the label named ``""``, ``<pad>``, ``[pad]`` or ``<blank>``).
    skip_ids : container of str
        Ids to pass over (ids already decoded, as ``--resume`` does).
    on_problem : callable (where, reason), optional
        Called for an input that cannot be decoded (unreadable, malformed, a duplicate id),
        which is then skipped; without it the first problem raises ``ValueError``.
    batch_size : int
        Utterances per task (in-memory arrays also at most 8 MiB a task).
    max_in_flight : int, optional
        Tasks out at a time (default: four per worker thread, at least 8).
    **options
        The options of ``fastctc decode`` by their Python names: ``decoder``,
        ``beam_width``, ``lm``, ``unigrams``, ``alpha``, ``beta``, ``nbest``, ``hotwords``,
        ``input_kind``, ``frame_shift``, ... (see :func:`make_recipe`).

    Yields
    ------
    dict
        One record per utterance (``id``, ``text``, ``num_frames``, ``score``,
        ``logit_score``, ``lm_score`` with a model, ``words``, ``nbest`` with ``nbest > 1``,
        ``source``), each id once, in completion order.

    Raises
    ------
    ImportError
        dask.distributed is not installed.
    ValueError
        A problem with an input when no ``on_problem`` is given.

    Examples
    --------
    A sketch (a cluster and files readable by its workers)::

        from distributed import Client
        import fastctc.dask

        with Client("tcp://scheduler:8786") as client:
            for rec in fastctc.dask.decode(client, "/data/logits", "labels.txt", lm="lm.arpa"):
                print(rec["id"], rec["text"])
    """
    _distributed()
    if options.get("threads") is None:
        options["threads"] = _default_threads(client)
    recipe = make_recipe(labels, blank, **options)

    def report(p: Problem) -> None:
        if on_problem is None:
            raise ValueError(f"{p.where}: {p.reason}")
        on_problem(p.where, p.reason)

    def valid() -> Iterator[tuple[fio.Source, Any]]:
        for kind, item in _items(inputs, skip_ids):
            if kind == "decode":
                yield item
            elif kind != "skip":
                report(item)

    written: set[str] = set()
    for _, outcomes in stream(
        client, recipe, valid(), batch_size=batch_size, max_in_flight=max_in_flight
    ):
        for out in outcomes:
            if isinstance(out, Problem):
                report(out)
            elif out["id"] not in written:
                written.add(out["id"])
                yield out


# ---------------------------------------------------------------------------- clusters


def start_local(n_workers: int, **kwargs: Any) -> Client:
    """A client of a new ``LocalCluster`` of ``n_workers`` worker processes with one Dask
    thread each, its web server on a free port of this machine (``client.dashboard_link``;
    the default 8787 is left to other clusters); ``kwargs`` go to ``LocalCluster``. Closing
    the client closes the cluster. Each worker decodes on its share of the cores
    (:func:`decode`'s ``threads``).

    Examples
    --------
    A sketch (it starts processes)::

        with fastctc.dask.start_local(2) as client:
            records = list(fastctc.dask.decode(client, arrays, labels))
    """
    distributed = _distributed()
    settings = {"threads_per_worker": 1, "processes": True, "dashboard_address": "127.0.0.1:0"}
    # a client given no address starts the cluster itself, and closes it with itself
    return distributed.Client(n_workers=n_workers, set_as_default=False, **{**settings, **kwargs})


@contextlib.contextmanager
def connect(scheduler: str) -> Iterator[Client]:
    """A client of ``scheduler``: ``local:N`` starts (and then stops) a local cluster of N
    worker processes; anything else is a scheduler's address (``tcp://host:8786``) or a
    scheduler file (a path ending in ``.json``)."""
    distributed = _distributed()
    if scheduler.startswith("local:"):
        try:
            n = int(scheduler[len("local:") :])
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"local:N needs a number of workers N >= 1; got {scheduler!r}.")
        client = start_local(n)
    elif scheduler.endswith(".json"):
        client = distributed.Client(scheduler_file=scheduler, set_as_default=False)
    else:
        client = distributed.Client(scheduler, set_as_default=False)
    with client:
        yield client


# ---------------------------------------------------------------------------- command line


def cmd_decode(args: argparse.Namespace) -> int:
    """``fastctc decode --scheduler ADDRESS``: the local run's output, in completion order
    (``--shard``, ``--resume``, ``--strict``, ``--refs``, progress bar and summary alike)."""
    from . import cli

    t_start = time.perf_counter()
    try:
        distributed = _distributed()
    except ImportError as exc:
        raise cli.UsageError(f"--scheduler: {exc}") from None
    if args.resume and args.output == "-":
        raise cli.UsageError("--resume needs an output file (-o FILE).")
    labels, blank = cli._labels_and_blank(args)
    refs = None
    if args.refs:
        try:
            refs = fio.read_refs(args.refs)
        except (OSError, ValueError) as exc:
            raise cli.UsageError(f"--refs: {exc}") from None
    cli._resolve_lm(args)  # a missing model or unigram file, before the cluster starts
    listed = list(fio.list_sources(args.inputs))
    cli._check_output(args.output, cli._input_files(args, listed))
    shard = getattr(args, "shard", None)
    sources = list(fio.select_shard(listed, shard))
    options = {k: getattr(args, k) for k in _decode_defaults()}
    texts: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        try:
            client = stack.enter_context(connect(args.scheduler))
        except (OSError, ValueError, TimeoutError) as exc:
            raise cli.UsageError(f"--scheduler {args.scheduler}: {exc}") from None
        if options["threads"] is None:
            options["threads"] = _default_threads(client)
        recipe = make_recipe(labels, blank, **options)
        fh, done = stack.enter_context(cli._open_output(args.output, args.resume, args.format))
        writer = fio.ResultWriter(fh, args.format, args.frame_shift)
        if shard is not None:
            cli._check_resumed_shard(done, shard, args.output)
        texts.update(done)
        run = cli._Run("decode", args, t_start)
        bar = cli._Progress(sum(isinstance(s, fio.Source) for s in sources), args.quiet, "decode")
        stack.callback(bar.close)

        def valid() -> Iterator[tuple[fio.Source, Any]]:
            for kind, item in _items(sources, done):
                if kind == "decode":
                    yield item
                    continue
                if kind == "skip":
                    run.resumed += 1
                if kind != "problem":
                    bar.update(1)
                if kind != "skip" and run.problem(item.where, item.reason):
                    raise _Stop

        written: set[str] = set()
        try:
            for n, outcomes in stream(client, recipe, valid(), batch_size=args.batch_size):
                for out in outcomes:
                    if isinstance(out, Problem):
                        if run.problem(out.where, out.reason):
                            raise _Stop
                    elif out["id"] not in written:
                        written.add(out["id"])
                        writer.write(out)
                        texts[out["id"]] = out["text"]
                        run.utterances += 1
                        run.frames += out["num_frames"]
                bar.update(n)
            stopped = False
        except _Stop:
            stopped = True
        except distributed.KilledWorker as exc:  # a batch that brings down every worker
            bar.close()
            cli._report_stop(f"error: {exc}", run, args)
            return cli.EXIT_ERROR
        except KeyboardInterrupt:
            bar.close()
            cli._report_stop("interrupted", run, args)
            return cli.EXIT_INTERRUPTED
        bar.close()
        fh.flush()
        extra = cli._score_refs(refs, texts) if refs is not None else ""
        if shard is not None:
            total = sum(isinstance(s, fio.Source) for s in listed)
            mine = sum(isinstance(s, fio.Source) for s in sources)
            part = f"shard {shard}: {mine} of {total} utterances listed"
            extra = f"{part}; {extra}" if extra else part
        run.summary(extra)  # before the cluster closes, which takes a second or two
        if refs is not None and args.quiet:
            print(f"fastctc decode: {extra}", file=sys.stderr)
    if stopped:
        return cli.EXIT_ERROR
    return cli.EXIT_SKIPPED if run.skipped else cli.EXIT_OK


class _Stop(Exception):
    """``--strict`` met a problem: stop, cancelling the tasks still out."""
