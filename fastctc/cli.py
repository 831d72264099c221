"""The ``fastctc`` command line: ``decode``, ``tune``, ``merge``, ``warmup``, ``demo``, ``align``,
``plot``.

``fastctc decode`` is offline batch decoding: folders of acoustic-model outputs in, transcripts
out (JSON Lines or TSV), written as they are decoded so an interrupted run keeps its work and
``--resume`` carries on where it stopped. ``--shard K/N`` decodes one of N parts of the inputs
(by a hash of each utterance id), so that N independent jobs cover a corpus once, and
``fastctc merge`` joins their outputs, reporting ids that are missing or decoded twice.
``fastctc warmup`` fills Numba's disk cache (for container images and cluster nodes). Run
``fastctc <command> --help`` for the options.

Exit status: 0 everything decoded; 1 stopped by an error (``--strict`` or a fatal one);
2 wrong usage; 3 finished, but some inputs were skipped (each reported on stderr; for
``merge``: ids missing or decoded differently twice); 130 interrupted (what was decoded so far
is kept).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import numpy as np

from . import io as fio
from .defaults import (
    DEFAULT_ALPHA,
    DEFAULT_BEAM_PRUNE_LOGP,
    DEFAULT_BEAM_WIDTH,
    DEFAULT_BETA,
    DEFAULT_HOTWORD_WEIGHT,
    DEFAULT_LEXICON_LOG_ADD,
    DEFAULT_LEXICON_SIL_SCORE,
    DEFAULT_LEXICON_UNK_SCORE,
    DEFAULT_TOKEN_MIN_LOGP,
    DEFAULT_UNK_LOGP_OFFSET,
)

#: Beam width of ``fastctc demo`` (smaller than the default: the demo runs on first contact).
DEMO_BEAM_WIDTH = 64

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SKIPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(Exception):
    """A problem with the command line or its files, reported without a traceback."""


class Result(NamedTuple):
    """One decoded hypothesis, whatever the decoder."""

    text: str
    words: list[tuple[str, int, int]]
    score: float
    logit_score: float
    lm_score: float | None
    confidences: list[float] | None = None


Decoder = Callable[[list[np.ndarray]], list[list[Result]]]


# --------------------------------------------------------------------------- argument parsing


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not x > 0 or not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"must be > 0; got {text}")
    return x


def _finite_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"must be a finite number; got {text}")
    return x


def _score_below_inf(text: str) -> float:
    """A number below +inf (``-inf`` allowed)."""
    x = _logp(text)
    if x == math.inf:
        raise argparse.ArgumentTypeError(f"must be below +inf; got {text}")
    return x


def _logp(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if math.isnan(x):
        raise argparse.ArgumentTypeError(f"must be a number, not {text}")
    return x


_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _size(text: str) -> int:
    t = text.strip().lower().removesuffix("b")
    unit = t[-1:] if t[-1:] in _SIZE_UNITS else ""
    try:
        x = float(t[: len(t) - len(unit)]) * _SIZE_UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 4G or 500M; got {text!r}"
        ) from None
    if not x >= 1 or not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"must be at least 1 byte; got {text}")
    return int(x)


def _positive_int(text: str) -> int:
    try:
        x = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None
    if x < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {x}")
    return x


def _shard(text: str) -> fio.Shard:
    try:
        return fio.parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help=".npy files (one (T, C) matrix each), .npz archives (one matrix per "
        "member) or directories of them",
    )
    p.add_argument(
        "--labels",
        required=True,
        metavar="FILE",
        help="labels: one per line (an empty line is the blank) or a JSON list / "
        "dict (label -> index, as a Hugging Face vocab.json)",
    )
    p.add_argument(
        "--blank",
        type=int,
        default=None,
        metavar="INDEX",
        help="index of the blank label (default: the label named '', <pad>, [pad] or <blank>)",
    )
    p.add_argument(
        "--input-kind",
        choices=fio.INPUT_KINDS,
        default="log-probs",
        help="what the matrices hold (default: log-probs); nothing is guessed",
    )
    p.add_argument(
        "--frame-shift",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="seconds per frame (e.g. 0.02 for wav2vec2): adds times in seconds "
        "and the real-time factor",
    )
    p.add_argument(
        "-o", "--output", default="-", metavar="FILE", help="output file (default: stdout)"
    )
    _add_max_bytes(p)
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first unreadable or malformed input instead of skipping it",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar and no summary (problems are still reported)",
    )


def _add_max_bytes(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-bytes",
        type=_size,
        default=fio.DEFAULT_MAX_BYTES,
        metavar="SIZE",
        help="largest utterance read, counted as float32 (default 2G; suffixes K, M, G, T "
        "are powers of 1024): a larger one is refused from its .npy header, before its data is "
        "read or decompressed",
    )


class _Given(argparse.Action):
    """Store the value and note that it was given (so ``--params`` does not override it)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


def _add_decoding_options(p: argparse.ArgumentParser, demo: bool = False) -> None:
    g = p.add_argument_group("decoding")
    if not demo:
        g.add_argument(
            "--decoder",
            choices=("beam", "greedy"),
            default="beam",
            help="beam search (default) or greedy best path",
        )
    g.add_argument(
        "--beam-width",
        type=_positive_int,
        default=DEMO_BEAM_WIDTH if demo else DEFAULT_BEAM_WIDTH,
        metavar="N",
        help=f"beams kept per frame (default {DEMO_BEAM_WIDTH if demo else DEFAULT_BEAM_WIDTH})",
    )
    g.add_argument(
        "--beam-prune-logp",
        type=_logp,
        default=DEFAULT_BEAM_PRUNE_LOGP,
        metavar="LOGP",
        help=f"drop beams this far below the best (default {DEFAULT_BEAM_PRUNE_LOGP:g})",
    )
    g.add_argument(
        "--token-min-logp",
        type=_logp,
        default=DEFAULT_TOKEN_MIN_LOGP,
        metavar="LOGP",
        help=f"skip tokens below this frame log-probability (default {DEFAULT_TOKEN_MIN_LOGP:g})",
    )
    g.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="decoding threads (default: all cores)",
    )
    if demo:
        return
    g.add_argument(
        "--nbest",
        type=_positive_int,
        default=1,
        metavar="K",
        help="hypotheses kept per utterance (default 1)",
    )
    g.add_argument(
        "--batch-size",
        type=_positive_int,
        default=64,
        metavar="N",
        help="utterances decoded together (default 64)",
    )
    lm = p.add_argument_group("language model")
    lm.add_argument(
        "--lm",
        metavar="PATH",
        help="word n-gram model: ARPA (plain or .gz) or KenLM binary (hash-table "
        "binaries need the kenlm package); 'default' for the bundled English "
        "4-gram (character labels a-z, apostrophe, space)",
    )
    lm.add_argument(
        "--unigrams",
        metavar="FILE",
        help="the LM's vocabulary, one word a line (default: read from an ARPA "
        "model; the bundled list with --lm default)",
    )
    lm.add_argument(
        "--alpha",
        type=_finite_float,
        action=_Given,
        default=DEFAULT_ALPHA,
        metavar="A",
        help=f"LM weight (default {DEFAULT_ALPHA:g}, as pyctcdecode)",
    )
    lm.add_argument(
        "--beta",
        type=_finite_float,
        action=_Given,
        default=DEFAULT_BETA,
        metavar="B",
        help=f"word insertion bonus (default {DEFAULT_BETA:g}, as pyctcdecode)",
    )
    lm.add_argument(
        "--unk-score-offset",
        type=_logp,
        default=DEFAULT_UNK_LOGP_OFFSET,
        metavar="LOGP",
        help="score of a partial word no LM word starts with "
        f"(default {DEFAULT_UNK_LOGP_OFFSET:g})",
    )
    lm.add_argument(
        "--lexicon",
        metavar="FILE",
        help="lexicon-constrained search: words are spelled only as the lexicon spells them; "
        "a file of 'word [labels...]' lines (flashlight/torchaudio format) or 'unigrams' for "
        "the unigram list",
    )
    lm.add_argument(
        "--unk-score",
        type=_score_below_inf,
        action=_Given,
        default=DEFAULT_LEXICON_UNK_SCORE,
        metavar="S",
        help="with --lexicon: score of an out-of-lexicon word (default -inf: none allowed)",
    )
    lm.add_argument(
        "--sil-score",
        type=_finite_float,
        action=_Given,
        default=DEFAULT_LEXICON_SIL_SCORE,
        metavar="S",
        help=f"with --lexicon: score per delimiter between words "
        f"(default {DEFAULT_LEXICON_SIL_SCORE:g})",
    )
    lm.add_argument(
        "--log-add",
        choices=("on", "off"),
        action=_Given,
        default="on" if DEFAULT_LEXICON_LOG_ADD else "off",
        help="with --lexicon: merge paths that reach the same state by adding their "
        "probabilities (on) or keep the better (off, the default)",
    )
    lm.add_argument(
        "--hotwords",
        action="append",
        default=None,
        metavar="PHRASE",
        help="word or phrase to favour (repeatable)",
    )
    lm.add_argument(
        "--hotword-weight",
        type=_finite_float,
        default=DEFAULT_HOTWORD_WEIGHT,
        metavar="W",
        help=f"hotword bonus (default {DEFAULT_HOTWORD_WEIGHT:g}; a finite number)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``fastctc`` argument parser."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="fastctc",
        description="Fast CTC decoding on CPUs: batch decoding, forced alignment, plots.",
        epilog="Start with 'fastctc demo'. Exit status: 0 ok, 1 error, 2 usage, "
        "3 some inputs skipped, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"fastctc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "decode",
        help="decode CTC outputs to text (JSON Lines or TSV)",
        description="Decode folders of CTC outputs to transcripts.",
    )
    _add_input_options(p)
    p.add_argument(
        "--format",
        choices=("jsonl", "tsv"),
        default="jsonl",
        help="jsonl (default): id, text, scores, word spans; tsv: id, text, score",
    )
    p.add_argument(
        "--resume", action="store_true", help="keep the output file and skip the ids already in it"
    )
    p.add_argument(
        "--refs",
        metavar="FILE",
        help="reference transcripts (id<TAB>text): print CER/WER at the end",
    )
    p.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="K/N",
        help="decode only part K of N, K = 0..N-1 (numbered from 0, as Kubernetes' "
        "JOB_COMPLETION_INDEX; Slurm: --array=0-<N-1>): the utterances whose id hashes to K "
        "(SHA-256 of the id, modulo N). The split depends on the ids alone, not on the order, "
        "folder or machine the inputs are listed on, so N jobs given the same inputs decode "
        "every utterance once; each writes its own output (with --resume, reruns are safe), "
        "joined by 'fastctc merge'. By id rather than by file: ids are what merge checks, and "
        "an .npz archive is shared by all shards, each reading only the zip directory and its "
        "own members",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="decode on a Dask cluster: its scheduler's address (tcp://host:8786) or "
        "scheduler file (.json), or local:N to start N worker processes here; the same "
        'records, written as they complete (pip install "fastctc[dask]")',
    )
    p.add_argument(
        "--params",
        metavar="FILE",
        help="alpha and beta (and the lexicon scores) from a file written by 'fastctc tune' "
        "(the options given on the line win)",
    )
    _add_decoding_options(p)
    p.add_argument(
        "--stream-chunk",
        type=_positive_int,
        default=None,
        metavar="N",
        help="decode each utterance as a live stream fed N frames at a time (the beam "
        "decoders' streaming API, all of a batch's streams advanced together); the output is "
        "the same as without it",
    )
    p.set_defaults(func=cmd_decode)
    _add_tune_parser(sub)

    p = sub.add_parser(
        "merge",
        help="join the outputs of sharded decode runs; report missing and duplicated ids",
        description="Join the JSON Lines or TSV outputs of 'fastctc decode' (shards, reruns) "
        "into one file, each id once. Records are copied as they are. Order: that of --inputs "
        "or --ids when given (with --inputs, the order an unsharded decode writes), otherwise "
        "sorted by id. Reported on stderr, with exit status 3: expected ids that no output "
        "holds, ids found twice with different records (the first, in argument order, is "
        "kept; identical ones are simply kept once), outputs cut short by an interruption "
        "and outputs that do not exist.",
    )
    p.add_argument(
        "parts",
        nargs="+",
        metavar="SHARD_OUTPUT",
        help="outputs of fastctc decode, all JSON Lines or all TSV (told from their first line)",
    )
    p.add_argument(
        "-o", "--output", default="-", metavar="FILE", help="merged file (default: stdout)"
    )
    expected = p.add_mutually_exclusive_group()
    expected.add_argument(
        "--inputs",
        nargs="+",
        metavar="INPUT",
        help="the inputs given to decode (files, folders): their ids are the ones expected "
        "(an .npz archive's member names are read from its zip directory, not its data)",
    )
    expected.add_argument(
        "--ids",
        metavar="FILE",
        help="the ids expected, one a line; only the first tab-separated field counts, so a "
        "references or transcripts file (id<TAB>text) will do",
    )
    p.add_argument(
        "--shards",
        type=_positive_int,
        default=None,
        metavar="N",
        help="the N of --shard K/N: missing ids are also counted per shard, naming the jobs "
        "to rerun",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no summary (problems are reported)")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser(
        "warmup",
        help="compile every kernel into Numba's disk cache (for images and cluster nodes)",
        description="Compile fastctc's CPU kernels (loss, greedy and prefix beam search, "
        "forced alignment, metrics, language-model readers and the LM decoder; float32 and "
        "float64) on tiny inputs, so that they are in Numba's disk cache before the first "
        "decode. Later processes load them instead of compiling. The cache folder is "
        "NUMBA_CACHE_DIR when set (use it for a read-only install, or to keep the cache in a "
        "container image), else Numba's user-wide cache for an installed copy, else "
        "__pycache__ beside the modules of a source checkout.",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=cmd_warmup)

    p = sub.add_parser(
        "demo",
        help="decode the bundled example set three ways",
        description="Greedy, beam and beam + LM decoding of the bundled "
        "example utterances, with WER and timings.",
    )
    p.add_argument(
        "--show", type=int, default=3, metavar="N", help="utterances printed in full (default 3)"
    )
    p.add_argument("--alpha", type=float, default=0.5, metavar="A", help="LM weight (default 0.5)")
    p.add_argument(
        "--beta",
        type=float,
        default=1.0,
        metavar="B",
        help="word bonus (default 1.0; 0.5/1.0 were tuned with pyctcdecode on "
        "held-out sentences outside the bundled set)",
    )
    _add_decoding_options(p, demo=True)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "align",
        help="forced alignment of transcripts (JSON Lines or CTM)",
        description="Align known transcripts to CTC outputs: token and word "
        "spans in frames (and seconds with --frame-shift).",
    )
    _add_input_options(p)
    p.add_argument(
        "--transcripts", required=True, metavar="FILE", help="transcripts to align, id<TAB>text"
    )
    p.add_argument(
        "--format",
        choices=("jsonl", "ctm"),
        default="jsonl",
        help="jsonl (default): token and word spans; ctm: one word a line (needs --frame-shift)",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="threads (default: all cores)",
    )
    p.set_defaults(func=cmd_align)

    p = sub.add_parser(
        "plot",
        help="PNG of one utterance: posteriorgram, path, words",
        description="Draw one utterance: its posteriorgram (the most active "
        "labels), the greedy path and the decoded words.",
    )
    p.add_argument("input", metavar="INPUT", help=".npy file or .npz archive")
    p.add_argument("--id", default=None, help="utterance id inside an .npz (default: first)")
    p.add_argument("--labels", required=True, metavar="FILE")
    p.add_argument("--blank", type=int, default=None, metavar="INDEX")
    p.add_argument("--input-kind", choices=fio.INPUT_KINDS, default="log-probs")
    p.add_argument("--frame-shift", type=_positive_float, default=None, metavar="SECONDS")
    p.add_argument(
        "--top",
        type=_positive_int,
        default=30,
        help="labels shown: the most probable ones (default 30)",
    )
    p.add_argument(
        "--lm",
        metavar="PATH",
        help="also decode with beam search + this LM ('default' for the bundled one)",
    )
    _add_max_bytes(p)
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="PNG",
        help="image file (default: <id>.png in the current folder, the id made a safe file "
        "name: path separators, control and other unsafe characters become '_', no leading "
        "dots)",
    )
    p.set_defaults(func=cmd_plot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"fastctc {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"fastctc {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. piped into head
        with contextlib.suppress(Exception):
            sys.stdout = open(_devnull(), "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK


def _devnull() -> str:
    import os

    return os.devnull


# --------------------------------------------------------------------------- shared helpers


def _labels_and_blank(args: argparse.Namespace) -> tuple[list[str], int]:
    try:
        labels = fio.read_labels(args.labels)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.blank is None:
        blank = fio.find_blank(labels)
        if blank is None:
            raise UsageError(
                f"cannot tell which of the {len(labels)} labels in {args.labels} is the blank; "
                "pass --blank INDEX."
            )
    else:
        blank = args.blank
        if not -len(labels) <= blank < len(labels):
            raise UsageError(f"--blank {blank} is outside the {len(labels)} labels.")
        blank %= len(labels)
    return labels, blank


def _resolve_lm(args: argparse.Namespace) -> tuple[str | None, list[str] | None]:
    lm = getattr(args, "lm", None)
    if lm is None:
        if getattr(args, "unigrams", None):
            raise UsageError("--unigrams needs --lm.")
        return None, None
    unigrams_path = getattr(args, "unigrams", None)
    if lm == "default":
        from .data import default_lm

        bundled = default_lm()
        lm = str(bundled.path)
        unigrams_path = unigrams_path or str(bundled.unigrams_path)
    if not Path(lm).is_file():
        raise UsageError(f"--lm {lm}: no such file.")
    unigrams = None
    if unigrams_path:
        try:
            with open(unigrams_path, encoding="utf-8") as fh:
                unigrams = [w.strip() for w in fh if w.strip()]
        except OSError as exc:
            raise UsageError(f"--unigrams {unigrams_path}: {exc}") from None
    return lm, unigrams


def _pad(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lens = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    C = arrays[0].shape[1]
    out = np.zeros((len(arrays), max(1, int(lens.max())), C), dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return out, lens


def _words_of(
    vocab: fio.Vocabulary, lp: np.ndarray, tokens: np.ndarray, starts: np.ndarray
) -> list[tuple[str, int, int]]:
    ends = fio.token_ends(np.argmax(lp, axis=1), tokens.tolist(), starts.tolist())
    return vocab.words(tokens.tolist(), starts.tolist(), ends)


def _greedy_decoder(vocab: fio.Vocabulary, threads: int | None) -> Decoder:
    from .greedy import greedy_decode_batch

    def run(arrays: list[np.ndarray]) -> list[list[Result]]:
        lp, lens = _pad(arrays)
        hyps = greedy_decode_batch(lp, lens, blank=vocab.blank, num_threads=threads)
        out = []
        for a, h in zip(arrays, hyps, strict=True):
            words = _words_of(vocab, a, h.tokens, h.timesteps)
            text = " ".join(w for w, _, _ in words)
            out.append([Result(text, words, h.log_prob, h.log_prob, None)])
        return out

    return run


def _missing(feature: str, name: str) -> UsageError:
    return UsageError(
        f"{feature} needs fastctc.{name}, which this build of fastctc does not provide."
    )


def _beam_decoder(vocab: fio.Vocabulary, args: argparse.Namespace, nbest: int) -> Decoder:
    import fastctc

    search = getattr(fastctc, "beam_search_batch", None)
    if search is None:
        raise _missing("beam search", "beam_search_batch")

    def searched(arrays: list[np.ndarray]) -> list[Any]:
        if getattr(args, "stream_chunk", None):
            streams = [
                fastctc.BeamStream(
                    args.beam_width,
                    blank=vocab.blank,
                    top_paths=nbest,
                    beam_prune_logp=args.beam_prune_logp,
                    token_min_logp=args.token_min_logp,
                )
                for _ in arrays
            ]
            _stream_in_chunks(
                streams,
                arrays,
                args.stream_chunk,
                lambda st, ch: fastctc.feed_streams(st, ch, num_threads=args.threads),
            )
            return [st.finish() for st in streams]
        lp, lens = _pad(arrays)
        return search(
            lp,
            lens,
            beam_width=args.beam_width,
            blank=vocab.blank,
            top_paths=nbest,
            beam_prune_logp=args.beam_prune_logp,
            token_min_logp=args.token_min_logp,
            num_threads=args.threads,
        )

    def run(arrays: list[np.ndarray]) -> list[list[Result]]:
        nb = searched(arrays)
        out = []
        for a, hyps in zip(arrays, nb, strict=True):
            res = []
            for h in hyps:
                words = _words_of(vocab, a, np.asarray(h.tokens), np.asarray(h.timesteps))
                text = " ".join(w for w, _, _ in words)
                res.append(Result(text, words, float(h.log_prob), float(h.log_prob), None))
            out.append(res)
        return out

    return run


def _lm_decoder(
    labels: list[str],
    blank: int,
    args: argparse.Namespace,
    lm: str | None,
    unigrams: list[str] | None,
    nbest: int,
    hotwords: list[str] | None,
) -> Decoder:
    import fastctc

    build = getattr(fastctc, "build_ctcdecoder", None)
    if build is None:
        raise _missing("language-model decoding and hotwords", "build_ctcdecoder")
    dec_labels = list(labels)
    dec_labels[blank] = ""
    try:
        decoder = build(
            dec_labels,
            kenlm_model_path=lm,
            unigrams=unigrams,
            alpha=args.alpha,
            beta=args.beta,
            unk_score_offset=args.unk_score_offset,
            **_lexicon_kwargs(args),
        )
    except ImportError as exc:
        raise UsageError(f"{exc}") from None
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot load the language model {lm}: {exc}") from None

    search_kw = dict(
        beam_width=args.beam_width,
        beam_prune_logp=args.beam_prune_logp,
        token_min_logp=args.token_min_logp,
        hotwords=hotwords,
        hotword_weight=args.hotword_weight,
    )

    def searched(arrays: list[np.ndarray]) -> list[Any]:
        if getattr(args, "stream_chunk", None):
            if getattr(args, "lexicon", None):
                raise UsageError("--stream-chunk does not work with --lexicon.")
            streams = [decoder.stream(**search_kw) for _ in arrays]
            _stream_in_chunks(
                streams,
                arrays,
                args.stream_chunk,
                lambda st, ch: decoder.feed_streams(st, ch, num_threads=args.threads),
            )
            return [st.finish(max_beams=nbest) for st in streams]
        return decoder.decode_beams_batch(
            None, arrays, **search_kw, num_threads=args.threads, max_beams=nbest
        )

    def run(arrays: list[np.ndarray]) -> list[list[Result]]:
        beams_list = searched(arrays)
        out = []
        for beams in beams_list:
            res = []
            for b in beams[:nbest]:
                text, frames = b.text, b.text_frames
                logit_score, lm_score = float(b.logit_score), float(b.lm_score)
                words = [(w, int(s), int(e)) for w, (s, e) in frames]
                conf = getattr(b, "word_confidences", None)
                res.append(
                    Result(
                        text,
                        words,
                        lm_score,
                        logit_score,
                        lm_score if lm is not None else None,
                        list(conf) if conf is not None else None,
                    )
                )
            out.append(res)
        return out

    return run


def _stream_in_chunks(
    streams: list[Any], arrays: list[np.ndarray], chunk: int, feed: Callable[..., None]
) -> None:
    """Feed each array to its stream ``chunk`` frames at a time: round ``k`` feeds the
    ``k``-th chunk of every array still running, in one ``feed(streams, chunks)`` call."""
    longest = max((a.shape[0] for a in arrays), default=0)
    for t0 in range(0, longest, chunk):
        live = [i for i, a in enumerate(arrays) if a.shape[0] > t0]
        feed([streams[i] for i in live], [arrays[i][t0 : t0 + chunk] for i in live])


def _lexicon_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``build_ctcdecoder``'s lexicon arguments from ``--lexicon`` and its scores."""
    source = getattr(args, "lexicon", None)
    if source is None:
        return {}
    if source != "unigrams" and not Path(source).is_file():
        raise UsageError(f"--lexicon {source}: no such file (or 'unigrams' for the unigrams).")
    return {
        "lexicon": True if source == "unigrams" else source,
        "unk_score": getattr(args, "unk_score", DEFAULT_LEXICON_UNK_SCORE),
        "sil_score": getattr(args, "sil_score", DEFAULT_LEXICON_SIL_SCORE),
        "log_add": getattr(args, "log_add", "off") == "on",  # tune's grid sets its own
    }


def make_decoder(args: argparse.Namespace, labels: list[str], blank: int) -> tuple[str, Decoder]:
    """The decoding function the options ask for, and a short name for it."""
    vocab = fio.Vocabulary.build(labels, blank)
    lm, unigrams = _resolve_lm(args)
    if args.lm == "default" and _uppercase_only(labels):
        print(
            "fastctc decode: warning: the bundled language model is lowercase but the "
            "labels are uppercase letters; its words will not match.",
            file=sys.stderr,
        )
    hotwords = args.hotwords
    lexicon = getattr(args, "lexicon", None)
    if args.decoder == "greedy":
        if lm or hotwords or lexicon or args.nbest > 1:
            raise UsageError("--lm, --lexicon, --hotwords and --nbest need --decoder beam.")
        if getattr(args, "stream_chunk", None):
            raise UsageError("--stream-chunk needs --decoder beam.")
        return "greedy", _greedy_decoder(vocab, args.threads)
    if args.nbest > args.beam_width:
        raise UsageError(f"--nbest {args.nbest} exceeds --beam-width {args.beam_width}.")
    if lm or hotwords or lexicon:
        name = "beam+lm" if lm else "beam+hotwords" if hotwords else "beam"
        if lexicon:
            name += "+lexicon"
        return name, _lm_decoder(labels, blank, args, lm, unigrams, args.nbest, hotwords)
    return "beam", _beam_decoder(vocab, args, args.nbest)


def _uppercase_only(labels: list[str]) -> bool:
    letters = [lab for lab in labels if len(lab) == 1 and lab.isalpha()]
    return bool(letters) and all(lab.isupper() for lab in letters)


def _record(
    uid: str, src: fio.Source, T: int, hyps: list[Result], frame_shift: float | None, nbest: int
) -> dict[str, Any]:
    best = hyps[0] if hyps else Result("", [], 0.0, 0.0, None)
    rec: dict[str, Any] = {
        "id": uid,
        "text": best.text,
        "num_frames": T,
        "score": best.score,
        "logit_score": best.logit_score,
    }
    if best.lm_score is not None:
        rec["lm_score"] = best.lm_score
    if best.confidences is not None and len(best.confidences) == len(best.words):
        rec["words"] = [
            _span(w, s, e, frame_shift, confidence=c)
            for (w, s, e), c in zip(best.words, best.confidences, strict=True)
        ]
    else:
        rec["words"] = [_span(w, s, e, frame_shift) for w, s, e in best.words]
    if nbest > 1:
        alts = []
        for h in hyps:
            alt = {"text": h.text, "score": h.score, "logit_score": h.logit_score}
            if h.lm_score is not None:
                alt["lm_score"] = h.lm_score
            alts.append(alt)
        rec["nbest"] = alts
    rec["source"] = src.where
    return rec


def _span(word: str, s: int, e: int, frame_shift: float | None, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"word": word, "start_frame": s, "end_frame": e, **extra}
    if frame_shift:
        d["start"] = round(s * frame_shift, 4)
        d["end"] = round(e * frame_shift, 4)
    return d


class _Progress:
    """tqdm on stderr when it is a terminal (and tqdm is installed), else nothing."""

    def __init__(self, total: int, quiet: bool, desc: str) -> None:
        self.bar = None
        if not quiet and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(
                total=total, unit="utt", desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False
            )

    def update(self, n: int) -> None:
        if self.bar is not None and n:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check_output(output: str | None, inputs: Sequence[str | Path | None]) -> None:
    """Refuse an output file that is one of the inputs (symbolic and hard links included)."""
    if output is None or output == "-" or not os.path.exists(output):
        return
    for p in inputs:
        if p is None:
            continue
        try:
            same = os.path.samefile(output, p)
        except OSError:
            continue
        if same:
            raise UsageError(
                f"the output {output} is the input {p}; writing it would destroy it. "
                "Choose another output file."
            )


def _input_files(args: argparse.Namespace, sources: Sequence[Any]) -> list[str | Path | None]:
    """Every file a command reads: inputs (folders expanded), labels, LM, references."""
    files: list[str | Path | None] = [s.path for s in sources if isinstance(s, fio.Source)]
    for name in ("labels", "refs", "transcripts", "lm", "unigrams"):
        value = getattr(args, name, None)
        if isinstance(value, str) and value != "default":
            files.append(value)
    files.extend(getattr(args, "inputs", None) or [getattr(args, "input", None)])
    return files


@contextlib.contextmanager
def _open_output(path: str, resume: bool, fmt: str) -> Iterator[tuple[TextIO, dict[str, str]]]:
    if path == "-":
        if resume:
            raise UsageError("--resume needs an output file (-o FILE).")
        yield sys.stdout, {}
        return
    done: dict[str, str] = {}
    mode = "w"
    if resume:
        try:
            done, keep = fio.read_done(path, fmt)
        except ValueError as exc:
            raise UsageError(f"--resume: {exc}. Choose another output file.") from None
        except OSError as exc:
            raise UsageError(f"--resume: cannot read {path}: {exc}") from None
        if Path(path).exists():
            with open(path, "r+b") as fh:  # drop a last line cut short by an interruption
                fh.truncate(keep)
            mode = "a"
    try:
        fh = open(path, mode, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc}") from None
    with fh:
        yield fh, done


class _Run:
    """Counters, problem reports and the closing summary shared by decode and align."""

    def __init__(
        self, command: str, args: argparse.Namespace, t_start: float | None = None
    ) -> None:
        self.command = command
        self.args = args
        self.t_start = time.perf_counter() if t_start is None else t_start
        self.t0 = time.perf_counter()  # end of the set-up (labels, model loading)
        self.utterances = self.frames = self.skipped = self.resumed = 0

    def problem(self, where: str, reason: str) -> bool:
        """Report a bad input; True when the run must stop (``--strict``)."""
        self.skipped += 1
        if self.args.strict:
            print(
                f"fastctc {self.command}: error: {where}: {reason}; stopping (--strict). "
                f"{self.utterances} utterances were written before it.",
                file=sys.stderr,
            )
            return True
        print(f"fastctc {self.command}: skipping {where}: {reason}", file=sys.stderr)
        return False

    def summary(self, extra: str = "") -> None:
        if self.args.quiet:
            return
        now = time.perf_counter()
        wall = now - self.t_start
        setup = self.t0 - self.t_start
        parts = [
            f"{self.utterances} utterances ({self.frames} frames) in {wall:.2f} s"
            + (f" (set-up {setup:.2f} s)" if setup >= 0.05 else ""),
            f"{self.utterances / wall:.1f} utt/s" if wall > 0 else "",
        ]
        fs = self.args.frame_shift
        if fs and self.frames:
            parts.append(
                f"RTF {wall / (self.frames * fs):.4f} "
                f"({self.frames * fs:.1f} s of audio at {fs:g} s/frame)"
            )
        if self.resumed:
            parts.append(f"{self.resumed} already done (--resume)")
        if self.skipped:
            parts.append(f"{self.skipped} input(s) skipped")
        if extra:
            parts.append(extra)
        print(f"fastctc {self.command}: " + "; ".join(p for p in parts if p), file=sys.stderr)


def _report_stop(why: str, run: Any, args: argparse.Namespace) -> None:
    """Tell on stderr why ``fastctc decode`` stopped early, how much it wrote and how to go on."""
    where = "" if args.output == "-" else f" to {args.output}; rerun with --resume"
    print(f"fastctc decode: {why}; {run.utterances} utterances written{where}", file=sys.stderr)


def _feed_inputs(
    sources: Sequence[Any],
    run: _Run,
    accept: Callable[[fio.Source], Any],
    add: Callable[[fio.Source, Any], bool],
    finish: Callable[[], bool],
) -> bool:
    """The input loop of decode and align; True when the run stopped early.

    Takes ``sources`` (from :func:`fastctc.io.list_sources`) in order. A problem found while
    listing an input, or a ``ValueError`` from ``accept(src)``, is reported through
    ``run.problem`` (which stops the run under ``--strict``). Otherwise ``accept`` returns
    ``None`` for an input to pass over, or the item handed to ``add(src, item)``, which
    returns False when the run must stop (a batch that could not be written). ``finish()``
    then processes what is still pending, also after a stop: those inputs were fine.
    """
    stopped = False
    for src in sources:
        if isinstance(src, fio.InputProblem):
            if run.problem(src.where, src.reason):
                stopped = True
                break
            continue
        try:
            item = accept(src)
        except ValueError as exc:
            if run.problem(src.where, str(exc)):
                stopped = True
                break
            continue
        if item is not None and not add(src, item):
            stopped = True
            break
    if not finish():
        stopped = True
    return stopped


# --------------------------------------------------------------------------- decode


def cmd_decode(args: argparse.Namespace) -> int:
    """``fastctc decode``."""
    _apply_params(args)
    if args.scheduler is not None:  # on a Dask cluster: fastctc.dask does the same job
        from . import dask as fdask

        return fdask.cmd_decode(args)
    t_start = time.perf_counter()
    if args.resume and args.output == "-":
        raise UsageError("--resume needs an output file (-o FILE).")
    labels, blank = _labels_and_blank(args)
    refs = None
    if args.refs:
        try:
            refs = fio.read_refs(args.refs)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--refs: {exc}") from None
    _, decoder = make_decoder(args, labels, blank)
    listed = list(fio.list_sources(args.inputs))
    _check_output(args.output, _input_files(args, listed))
    sources = list(fio.select_shard(listed, args.shard))
    reader = fio.MatrixReader(len(labels), args.input_kind, args.max_bytes)
    run = _Run("decode", args, t_start)
    texts: dict[str, str] = {}
    with _open_output(args.output, args.resume, args.format) as (fh, done):
        writer = fio.ResultWriter(fh, args.format, args.frame_shift)
        if args.shard is not None:
            _check_resumed_shard(done, args.shard, args.output)
        texts.update(done)
        bar = _Progress(sum(isinstance(s, fio.Source) for s in sources), args.quiet, "decode")
        seen: dict[str, str] = {}
        batch: list[tuple[fio.Source, np.ndarray]] = []

        def accept(src: fio.Source) -> np.ndarray | None:
            if src.uid in done:
                run.resumed += 1
                bar.update(1)
                return None
            if src.uid in seen:
                bar.update(1)
                raise ValueError(f"duplicate id {src.uid!r} (first in {seen[src.uid]})")
            seen[src.uid] = src.where
            try:
                return reader(src)
            except ValueError:
                bar.update(1)
                raise

        def add(src: fio.Source, arr: np.ndarray) -> bool:
            if batch and _batch_bytes(batch, arr) > _BATCH_BYTES and not flush():
                return False
            batch.append((src, arr))
            return len(batch) < args.batch_size or flush()

        def flush() -> bool:
            ok = _decode_and_write(batch, decoder, writer, run, texts, args)
            bar.update(len(batch))
            batch.clear()
            return ok

        try:
            stopped = _feed_inputs(sources, run, accept, add, lambda: not batch or flush())
        except KeyboardInterrupt:
            bar.close()
            _report_stop("interrupted", run, args)
            return EXIT_INTERRUPTED
        finally:
            reader.close()
        bar.close()
    extra = _score_refs(refs, texts) if refs is not None else ""
    if args.shard is not None:
        total = sum(isinstance(s, fio.Source) for s in listed)
        mine = sum(isinstance(s, fio.Source) for s in sources)
        part = f"shard {args.shard}: {mine} of {total} utterances listed"
        run.summary(f"{part}; {extra}" if extra else part)
    else:
        run.summary(extra)
    if refs is not None and args.quiet:
        print(f"fastctc decode: {extra}", file=sys.stderr)
    if stopped:
        return EXIT_ERROR
    return EXIT_SKIPPED if run.skipped else EXIT_OK


def _apply_params(args: argparse.Namespace) -> None:
    """Take ``args.alpha``/``args.beta`` (and the lexicon scores) from ``--params``, unless
    given on the line."""
    if not args.params:
        return
    from .tune import load_params

    try:
        params = load_params(args.params)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--params: {exc}") from None
    for name, value in params.items():
        if name == "log_add":
            value = "on" if value else "off"
        if name not in getattr(args, "given", ()):
            setattr(args, name, value)


# --------------------------------------------------------------------------- tune


def _add_tune_parser(sub: Any) -> None:
    p = sub.add_parser(
        "tune",
        help="grid search of the LM weight alpha and word bonus beta on a dev set",
        description="Decode a dev set with references at every (alpha, beta) of a grid, "
        "print WER and CER of each, and write the best setting for 'fastctc decode --params' "
        "and build_ctcdecoder(**fastctc.tune.load_params(FILE)).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="as for 'fastctc decode'")
    p.add_argument("--labels", required=True, metavar="FILE", help="as for 'fastctc decode'")
    p.add_argument("--blank", type=int, default=None, metavar="INDEX")
    p.add_argument("--input-kind", choices=fio.INPUT_KINDS, default="log-probs")
    _add_max_bytes(p)
    p.add_argument("--lm", required=True, metavar="PATH", help="as for 'fastctc decode'")
    p.add_argument("--unigrams", metavar="FILE", help="as for 'fastctc decode'")
    p.add_argument("--refs", required=True, metavar="FILE", help="references, id<TAB>text")
    p.add_argument(
        "--lexicon",
        metavar="FILE",
        help="tune the lexicon-constrained search ('unigrams' or a lexicon file, as for "
        "'fastctc decode'); also searches --unk-scores, --sil-scores and --log-add",
    )
    p.add_argument(
        "--unk-scores",
        type=_score_list,
        default=None,
        metavar="S,S,...",
        help="with --lexicon: out-of-lexicon word scores (-inf allowed; default -inf)",
    )
    p.add_argument(
        "--sil-scores",
        type=_number_list,
        default=None,
        metavar="S,S,...",
        help=f"with --lexicon: delimiter scores (default {DEFAULT_LEXICON_SIL_SCORE:g})",
    )
    p.add_argument(
        "--log-add",
        choices=("on", "off", "both"),
        default=None,
        help="with --lexicon: merge paths by adding probabilities, keeping the better, or "
        "try both (default off)",
    )
    p.add_argument(
        "--beam-prune-logp",
        type=_logp,
        default=DEFAULT_BEAM_PRUNE_LOGP,
        metavar="LOGP",
        help=f"drop beams this far below the best (default {DEFAULT_BEAM_PRUNE_LOGP:g})",
    )
    p.add_argument(
        "--alphas",
        type=_number_list,
        default=[0.3, 0.5, 0.7],
        metavar="A,A,...",
        help="default 0.3,0.5,0.7",
    )
    p.add_argument(
        "--betas",
        type=_number_list,
        default=[0.5, 1.0, 1.5, 2.0],
        metavar="B,B,...",
        help="default 0.5,1,1.5,2",
    )
    p.add_argument(
        "--beam-width",
        type=_positive_int,
        default=DEFAULT_BEAM_WIDTH,
        metavar="N",
        help=f"beams kept per frame (default {DEFAULT_BEAM_WIDTH})",
    )
    p.add_argument(
        "--threads", type=_positive_int, default=None, metavar="N", help="default: all cores"
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write the best setting here (JSON)")
    p.set_defaults(func=cmd_tune)


def _score_list(text: str) -> list[float]:
    values = [_score_below_inf(x) for x in text.split(",") if x.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected numbers such as -inf,-5; got {text!r}")
    return values


def _number_list(text: str) -> list[float]:
    values = [_finite_float(x) for x in text.split(",") if x.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected numbers such as 0.3,0.5,0.7; got {text!r}")
    return values


def cmd_tune(args: argparse.Namespace) -> int:
    """``fastctc tune``."""
    from .tune import tune

    labels, blank = _labels_and_blank(args)
    lm, unigrams = _resolve_lm(args)
    try:
        refs = fio.read_refs(args.refs)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--refs: {exc}") from None
    reader = fio.MatrixReader(len(labels), args.input_kind, args.max_bytes)
    arrays, texts, unmatched = [], [], 0
    try:
        for src in fio.list_sources(args.inputs):
            if isinstance(src, fio.InputProblem):
                raise UsageError(f"{src.where}: {src.reason}")
            if src.uid not in refs:
                unmatched += 1
                continue
            try:
                arrays.append(reader(src))
            except ValueError as exc:
                raise UsageError(f"{src.where}: {exc}") from None
            texts.append(refs[src.uid])
    finally:
        reader.close()
    if not arrays:
        raise UsageError(f"no input has a reference in --refs {args.refs}.")
    dec_labels = list(labels)
    dec_labels[blank] = ""
    import fastctc

    lex_kw = _lexicon_kwargs(args)
    if not lex_kw and (args.unk_scores or args.sil_scores or args.log_add):
        raise UsageError("--unk-scores, --sil-scores and --log-add need --lexicon.")
    try:
        decoder = fastctc.build_ctcdecoder(
            dec_labels, kenlm_model_path=lm, unigrams=unigrams, **lex_kw
        )
    except ImportError as exc:
        raise UsageError(f"{exc}") from None
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot load the language model {lm}: {exc}") from None
    log_adds = {None: None, "on": [True], "off": [False], "both": [False, True]}[args.log_add]
    t0 = time.perf_counter()
    res = tune(
        decoder,
        arrays,
        texts,
        args.alphas,
        args.betas,
        beam_width=args.beam_width,
        num_threads=args.threads,
        unk_scores=args.unk_scores,
        sil_scores=args.sil_scores,
        log_adds=log_adds,
        beam_prune_logp=args.beam_prune_logp,
    )
    print(res.table())
    best = " ".join(
        f"{k} {v:g}" if not isinstance(v, bool) else f"{k} {v}"
        for k, v in res.best.params().items()
    )
    print(
        f"best: {best}: WER {100 * res.best.wer:.2f}% "
        f"CER {100 * res.best.cer:.2f}% on {len(arrays)} utterances"
        + (f" ({unmatched} inputs without a reference skipped)" if unmatched else "")
        + f"; {len(res.grid)} settings in {time.perf_counter() - t0:.1f} s"
    )
    if args.output:
        res.save(args.output)
        print(f"wrote {args.output}")
    return EXIT_OK


def _check_resumed_shard(done: dict[str, str], shard: fio.Shard, output: str) -> None:
    """Warn when an output resumed with ``--shard`` holds ids of other shards: most likely
    the wrong file, or jobs that share one output (each shard needs its own)."""
    foreign = [uid for uid in done if fio.shard_of(uid, shard.count) != shard.index]
    if foreign:
        print(
            f"fastctc decode: warning: {output} holds {len(foreign)} ids of other shards than "
            f"{shard} (such as {foreign[0]!r}); is it this shard's output? Each shard needs "
            "an output file of its own.",
            file=sys.stderr,
        )


_BATCH_BYTES = 1 << 30  # padded batches stay below this, however long one utterance is


def _batch_bytes(batch: list[tuple[fio.Source, np.ndarray]], arr: np.ndarray) -> int:
    """Size of the padded float32 batch once ``arr`` joins it."""
    longest = max(arr.shape[0], *(a.shape[0] for _, a in batch))
    return (len(batch) + 1) * longest * arr.shape[1] * 4


def _decode_and_write(
    batch: list[tuple[fio.Source, np.ndarray]],
    decoder: Decoder,
    writer: fio.ResultWriter,
    run: _Run,
    texts: dict[str, str],
    args: argparse.Namespace,
) -> bool:
    """Decode a batch and write it; a batch that fails is retried one by one to find the
    utterance at fault. An utterance the decoder fails on, or returns no hypothesis for, is
    reported and skipped. Returns False when the run must stop."""
    todo = [(s, a) for s, a in batch if a.shape[0] > 0]
    results: dict[str, list[Result]] = {}
    failed: dict[str, str] = {}
    if todo:
        try:
            for (s, _), r in zip(todo, decoder([a for _, a in todo]), strict=True):
                results[s.uid] = list(r)
        except Exception:  # find the utterance at fault, decode the others
            results.clear()
            for s, a in todo:
                try:
                    results[s.uid] = list(decoder([a])[0])
                except Exception as exc:
                    reason = str(exc) if isinstance(exc, ValueError) else _describe(exc)
                    failed[s.uid] = f"decoding failed: {reason}"
    for s, a in batch:  # problems reported in input order
        hyps = results.get(s.uid, [])
        if a.shape[0] > 0 and not hyps:
            reason = failed.get(s.uid, "the decoder returned no hypothesis")
            if run.problem(s.where, f"id {s.uid!r}: {reason}"):
                return False
            continue
        rec = _record(s.uid, s, a.shape[0], hyps, args.frame_shift, args.nbest)
        writer.write(rec)
        texts[s.uid] = rec["text"]
        run.utterances += 1
        run.frames += a.shape[0]
    return True


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _score_refs(refs: dict[str, str], texts: dict[str, str]) -> str:
    from .metrics import cer, wer

    ids = [i for i in texts if i in refs]
    if not ids:
        return "no decoded id has a reference in --refs"
    r = [" ".join(refs[i].split()) for i in ids]
    h = [" ".join(texts[i].split()) for i in ids]
    missing = len(texts) - len(ids)
    return f"CER {100 * cer(r, h):.2f}% WER {100 * wer(r, h):.2f}% over {len(ids)} utterances" + (
        f" ({missing} without a reference)" if missing else ""
    )


# --------------------------------------------------------------------------- merge

#: Ids named one by one in a report of ``fastctc merge``; the others are counted.
_MAX_NAMED = 20


def cmd_merge(args: argparse.Namespace) -> int:
    """``fastctc merge``."""
    t_start = time.perf_counter()
    problems = 0

    def problem(message: str) -> None:
        nonlocal problems
        problems += 1
        print(f"fastctc merge: {message}", file=sys.stderr)

    expected, where, listed = _expected_ids(args, problem)
    _check_output(args.output, [*args.parts, *listed, *(args.inputs or []), args.ids])
    fmt, parts = _read_parts(args.parts, problem)
    index: dict[str, tuple[int, fio.OutputRecord]] = {}  # id -> its first record
    same = differ = 0
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(p, "rb")) if s is not None else None for p, s in parts]

        def line_of(k: int, rec: fio.OutputRecord) -> bytes:
            fh = files[k]
            assert fh is not None
            fh.seek(rec.start)
            return fh.read(rec.end - rec.start)

        for k, (path, scan) in enumerate(parts):
            for rec in scan.records if scan is not None else ():
                first = index.setdefault(rec.uid, (k, rec))
                if first[1] is rec:
                    continue
                if _same_record(line_of(*first), line_of(k, rec), fmt):
                    same += 1
                    continue
                differ += 1
                if differ <= _MAX_NAMED:
                    problem(
                        f"id {rec.uid!r} has different records in {parts[first[0]][0]} line "
                        f"{first[1].line} and {path} line {rec.line}; the first is kept"
                    )
        if differ > _MAX_NAMED:
            problem(f"... and {differ - _MAX_NAMED} more ids with different records")
        missing: list[str] = []
        if expected is None:
            order = sorted(index)
        else:
            wanted = set(expected)
            order = [uid for uid in expected if uid in index]
            missing = [uid for uid in expected if uid not in index]
            extra = sorted(uid for uid in index if uid not in wanted)
            if extra:
                what = "--inputs" if args.inputs else args.ids
                problem(
                    f"{len(extra)} ids in the outputs are not among the expected ones of "
                    f"{what} (such as {extra[0]!r}); they are written after the others"
                )
                order += extra
        with _open_merged(args.output) as out:
            for uid in order:
                out.write(line_of(*index[uid]))
    if missing:
        _report_missing(missing, where, args.shards, problem)
    if not args.quiet:
        wall = time.perf_counter() - t_start
        dest = "stdout" if args.output == "-" else args.output
        how = "sorted by id" if expected is None else "in the order of the expected ids"
        parts_text = [
            f"{len(order)} records from {len(parts)} output{'s' * (len(parts) != 1)} "
            f"written to {dest} ({how}) in {wall:.2f} s"
        ]
        if same:
            parts_text.append(f"{same} found again with an identical record, kept once")
        if expected is not None:
            parts_text.append(
                f"{len(missing)} of {len(expected)} expected ids missing"
                if missing
                else f"all {len(expected)} expected ids present"
            )
        print("fastctc merge: " + "; ".join(parts_text), file=sys.stderr)
    return EXIT_SKIPPED if problems else EXIT_OK


def _expected_ids(
    args: argparse.Namespace, problem: Callable[[str], None]
) -> tuple[list[str] | None, dict[str, str], list[Path]]:
    """The expected ids in order (None when neither ``--inputs`` nor ``--ids`` is given),
    where each comes from, and the input files listed."""
    if args.inputs:
        ids: list[str] = []
        where: dict[str, str] = {}
        files: list[Path] = []
        for src in fio.list_sources(args.inputs):
            if isinstance(src, fio.InputProblem):
                problem(f"--inputs: {src.where}: {src.reason}")
            elif src.uid not in where:
                ids.append(src.uid)
                where[src.uid] = src.where
                files.append(src.path)
        return ids, where, files
    if args.ids:
        try:
            with open(args.ids, encoding="utf-8") as fh:
                found = [line.rstrip("\r\n").split("\t")[0] for line in fh]
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--ids: cannot read {args.ids}: {exc}") from None
        ids = list(dict.fromkeys(uid for uid in found if uid.strip()))
        return ids, {}, []
    return None, {}, []


def _read_parts(
    paths: Sequence[str], problem: Callable[[str], None]
) -> tuple[str | None, list[tuple[str, fio.OutputScan | None]]]:
    """The format shared by the outputs (None when none holds a line) and each one's records
    (None for an output that does not exist)."""
    formats: dict[str, str] = {}
    for path in paths:
        if not os.path.exists(path):
            continue
        try:
            fmt = fio.output_format(path)
        except ValueError as exc:
            raise UsageError(f"{exc}. Merge outputs of fastctc decode only.") from None
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc}") from None
        if fmt is not None:
            formats.setdefault(fmt, path)
    if len(formats) > 1:
        raise UsageError(
            f"the outputs mix formats ({formats['jsonl']} is JSON Lines, {formats['tsv']} is "
            "TSV); merge outputs of one format."
        )
    fmt = next(iter(formats), None)
    parts: list[tuple[str, fio.OutputScan | None]] = []
    for path in paths:
        if not os.path.exists(path):
            problem(f"{path}: no such file (a shard that did not run?)")
            parts.append((path, None))
            continue
        try:
            scan = fio.scan_output(path, fmt or "jsonl")
        except ValueError as exc:
            raise UsageError(f"{exc}. Merge outputs of fastctc decode only.") from None
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc}") from None
        if scan.keep < scan.size:
            problem(
                f"{path}: its last line is cut short (an interrupted run?) and is left out; "
                "rerun that shard with --resume"
            )
        parts.append((path, scan))
    return fmt, parts


def _same_record(a: bytes, b: bytes, fmt: str | None) -> bool:
    """Whether two output lines hold the same record (JSON compared as values)."""
    if fmt == "jsonl":
        return bool(json.loads(a) == json.loads(b))
    return a.rstrip(b"\r\n") == b.rstrip(b"\r\n")


@contextlib.contextmanager
def _open_merged(path: str) -> Iterator[Any]:
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        fh = open(path, "wb")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc}") from None
    with fh:
        yield fh


def _report_missing(
    missing: list[str], where: dict[str, str], shards: int | None, problem: Callable[[str], None]
) -> None:
    for uid in missing[:_MAX_NAMED]:
        shard = f", shard {fio.shard_of(uid, shards)}/{shards}" if shards else ""
        place = f" ({where[uid]}{shard})" if uid in where else (f" ({shard[2:]})" if shard else "")
        problem(f"missing id {uid!r}{place}: in no output")
    if len(missing) > _MAX_NAMED:
        problem(f"... and {len(missing) - _MAX_NAMED} more missing ids")
    if shards:
        per: dict[int, int] = {}
        for uid in missing:
            k = fio.shard_of(uid, shards)
            per[k] = per.get(k, 0) + 1
        counts = ", ".join(f"{k}/{shards}: {n}" for k, n in sorted(per.items()))
        problem(f"missing ids per shard: {counts}; rerun those shards with --resume")


# --------------------------------------------------------------------------- warmup


def _kernel_dispatchers() -> list[Any]:
    """Every Numba dispatcher of ``fastctc.kernels`` (none under ``NUMBA_DISABLE_JIT=1``)."""
    import importlib
    import pkgutil

    from numba.core.dispatcher import Dispatcher

    from . import kernels

    found: dict[int, Any] = {}
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"{kernels.__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, Dispatcher):
                found[id(obj)] = obj
    return list(found.values())


def _warmup_steps() -> list[tuple[str, Callable[[], Any]]]:
    """What ``fastctc warmup`` runs: tiny calls reaching every kernel entry point, in each
    float type the public functions keep (float32 and float64)."""
    import fastctc

    dtypes = (np.float32, np.float64)

    def batch(dtype: Any) -> np.ndarray:
        return fastctc.log_softmax(np.zeros((2, 6, 4), dtype=dtype))

    def loss() -> None:
        for dt in dtypes:
            lp = batch(dt).transpose(1, 0, 2)
            fastctc.ctc_loss(lp, [[1, 2], [3, 3]], [6, 5], [2, 2], return_grad=True)

    def greedy() -> None:
        for dt in dtypes:
            fastctc.greedy_decode_batch(batch(dt), num_threads=1)

    def beam() -> None:
        for dt in dtypes:
            fastctc.beam_search_batch(batch(dt), beam_width=4, top_paths=2, num_threads=1)

    def align() -> None:
        for dt in dtypes:
            res = fastctc.forced_align(batch(dt), [[1, 2], [3, 3]], [6, 5], [2, 2], num_threads=1)
            fastctc.merge_tokens(res[0][0], np.exp(res[1][0]))

    def metrics() -> None:
        fastctc.edit_distance("ab", "b")
        fastctc.cer(["ab c"], ["a c"])
        fastctc.wer(["ab c"], ["a c"])

    def lm_tiny() -> None:
        from .lm.decoder import warmup_decoder

        warmup_decoder()

    def lm_bundled() -> None:
        from .data import default_lm, demo
        from .lm import load_model

        bundled = default_lm()
        load_model(bundled.path, backend="fastctc").score("the cat", bos=True, eos=True)
        decoder = fastctc.build_ctcdecoder(
            bundled.labels, kenlm_model_path=str(bundled.path), unigrams=bundled.unigrams
        )
        utt = demo().log_probs[1]
        decoder.decode_beams_batch(None, [utt, utt[:8]], beam_width=8, num_threads=1)

    return [
        ("CTC loss and gradient", loss),
        ("greedy decoding", greedy),
        ("prefix beam search", beam),
        ("forced alignment", align),
        ("edit distance, CER, WER", metrics),
        ("LM decoder (tiny model)", lm_tiny),
        ("bundled LM: reader, decode", lm_bundled),
    ]


def cmd_warmup(args: argparse.Namespace) -> int:
    """``fastctc warmup``."""
    from ._cache import cache_path, is_installed_copy

    t_start = time.perf_counter()
    dispatchers = _kernel_dispatchers()
    if not dispatchers:
        print("fastctc warmup: NUMBA_DISABLE_JIT is set: kernels run as Python, nothing to compile")
        return EXIT_OK
    folders = sorted({p for p in map(cache_path, dispatchers) if p})
    if os.environ.get("NUMBA_CACHE_DIR"):
        why = "under NUMBA_CACHE_DIR"
    elif is_installed_copy():
        why = "Numba's user-wide cache folder, for an installed copy"
    else:
        why = "beside the modules, for a source checkout"
    if not args.quiet:
        print(f"fastctc warmup: kernels cached in {', '.join(folders)} ({why})", flush=True)
    for name, step in _warmup_steps():
        t0 = time.perf_counter()
        step()
        if not args.quiet:
            print(f"  {name:<28} {time.perf_counter() - t0:7.2f} s", flush=True)
    compiled = sum(len(d.stats.cache_misses) for d in dispatchers)
    loaded = sum(len(d.stats.cache_hits) for d in dispatchers)
    print(
        f"fastctc warmup: {compiled} kernel signatures compiled, {loaded} loaded from the "
        f"cache, in {time.perf_counter() - t_start:.1f} s"
    )
    for folder in folders:
        files = [f for f in Path(folder).glob("*.nb[ic]") if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        print(f"fastctc warmup: {folder} holds {len(files)} files, {size / 2**20:.1f} MiB")
    return EXIT_OK


# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    """``fastctc demo``."""
    import fastctc

    from .data import default_lm, demo
    from .lm import kenlm_installed
    from .metrics import cer, wer

    ex, bundled = demo(), default_lm()
    ids, batch, ref_list, labels = ex.ids, ex.log_probs, ex.transcripts, ex.labels
    frames = sum(a.shape[0] for a in batch)
    ns = argparse.Namespace(
        beam_width=args.beam_width,
        beam_prune_logp=args.beam_prune_logp,
        token_min_logp=args.token_min_logp,
        threads=args.threads,
        alpha=args.alpha,
        beta=args.beta,
        unk_score_offset=DEFAULT_UNK_LOGP_OFFSET,
        hotword_weight=DEFAULT_HOTWORD_WEIGHT,
    )
    blank = ex.blank
    vocab = fio.Vocabulary.build(labels, blank)
    lm_path = bundled.path
    modes: list[tuple[str, Decoder | str]] = [("greedy", _greedy_decoder(vocab, args.threads))]
    try:
        modes.append((f"beam ({args.beam_width})", _beam_decoder(vocab, ns, 1)))
    except UsageError as exc:
        modes.append((f"beam ({args.beam_width})", str(exc)))
    try:
        modes.append(
            ("beam + LM", _lm_decoder(labels, blank, ns, str(lm_path), bundled.unigrams, 1, None))
        )
    except UsageError as exc:
        modes.append(("beam + LM", str(exc)))

    print(
        f"fastctc {fastctc.__version__} demo: {len(ids)} bundled utterances "
        f"({frames} frames, {len(labels)} character labels; simulated CTC outputs of "
        "held-out sentences)"
    )
    reader = "kenlm" if kenlm_installed() else "fastctc, without kenlm"
    print(
        f"language model: {lm_path.name} ({lm_path.stat().st_size / 1e6:.1f} MB, English "
        f"4-gram, read by {reader}), alpha={args.alpha}, beta={args.beta}; threads: "
        f"{args.threads or 'all cores'}"
    )
    print(
        "decoding... (a first run compiles the decoders with Numba, about half a minute; "
        "later runs load them from the cache)",
        flush=True,
    )
    print()
    table = []
    texts: dict[str, list[str]] = {}
    for name, dec in modes:
        if isinstance(dec, str):
            table.append((name, None, None, None, None, dec))
            continue
        t0 = time.perf_counter()
        dec(batch[:1])  # first call: compiles (or loads the compiled cache)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = dec(batch)
        wall = time.perf_counter() - t0
        hyp = [r[0].text if r else "" for r in out]
        texts[name] = hyp
        table.append((name, wer(ref_list, hyp), cer(ref_list, hyp), wall, first, ""))
    width = max(len(n) for n, _ in modes)
    for k in range(min(args.show, len(ids))):
        print(f"{ids[k]}")
        print(f"  {'reference':<{width}}  {ref_list[k]}")
        for name in texts:
            print(f"  {name:<{width}}  {texts[name][k]}")
        print()
    print(f"  {'mode':<{width}}    WER     CER   time (ms)   ms/utt   first call (s)")
    for name, w, c, wall, first, note in table:
        if w is None:
            print(f"  {name:<{width}}  unavailable: {note}")
            continue
        print(
            f"  {name:<{width}}  {100 * w:5.1f}%  {100 * c:5.1f}%  {1e3 * wall:9.1f}  "
            f"{1e3 * wall / len(ids):7.2f}   {first:6.2f}"
        )
    print()
    print(
        "WER/CER over all bundled utterances; times are for the whole set after a first "
        "call (which compiles, or loads Numba's cache)."
    )
    return EXIT_OK


# --------------------------------------------------------------------------- align


def _align_batch(
    items: list[tuple[np.ndarray, list[int]]], blank: int, threads: int | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Viterbi paths (label per frame) and per-frame log-probabilities of a batch."""
    import fastctc

    N = len(items)
    T = max(1, max(lp.shape[0] for lp, _ in items))
    S = max(1, max(len(t) for _, t in items))
    lps = np.zeros((N, T, items[0][0].shape[1]), dtype=np.float32)
    tgt = np.full((N, S), 1 if blank == 0 else 0, dtype=np.int64)
    for n, (lp, t) in enumerate(items):
        lps[n, : lp.shape[0]] = lp
        tgt[n, : len(t)] = t
    res = fastctc.forced_align(
        lps,
        tgt,
        [lp.shape[0] for lp, _ in items],
        [len(t) for _, t in items],
        blank=blank,
        num_threads=threads,
    )
    return [
        (
            np.asarray(res[0][n, : lp.shape[0]]),
            np.asarray(res[1][n, : lp.shape[0]], dtype=np.float64),
        )
        for n, (lp, _) in enumerate(items)
    ]


def _token_spans(
    path: np.ndarray, scores: np.ndarray, blank: int
) -> list[tuple[int, int, int, float]]:
    """Runs of one non-blank label in a frame path: ``(token, start, end, mean prob)``."""
    import fastctc

    return [
        (int(sp[0]), int(sp[1]), int(sp[2]), float(sp[3]))
        for sp in fastctc.merge_tokens(path, np.exp(scores), blank=blank)
    ]


def cmd_align(args: argparse.Namespace) -> int:
    """``fastctc align``."""
    labels, blank = _labels_and_blank(args)
    vocab = fio.Vocabulary.build(labels, blank)
    try:
        transcripts = fio.read_refs(args.transcripts)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--transcripts: {exc}") from None
    if args.format == "ctm" and not args.frame_shift:
        raise UsageError("CTM output holds times in seconds; pass --frame-shift.")
    import fastctc

    if getattr(fastctc, "forced_align", None) is None:
        raise _missing("forced alignment", "forced_align")
    sources = list(fio.list_sources(args.inputs))
    _check_output(args.output, _input_files(args, sources))
    reader = fio.MatrixReader(len(labels), args.input_kind, args.max_bytes)
    run = _Run("align", args)
    no_text = 0
    batch: list[tuple[fio.Source, np.ndarray, list[int]]] = []

    def flush(writer: fio.ResultWriter) -> bool:
        items = [(lp, t) for _, lp, t in batch]
        try:
            paths: list[Any] = _align_batch(items, blank, args.threads)
        except Exception:  # find the utterance at fault, align the others
            paths = []
            for (src, _, _), item in zip(batch, items, strict=True):
                try:
                    paths.append(_align_batch([item], blank, 1)[0])
                except Exception as exc:
                    paths.append(None)
                    reason = str(exc) if isinstance(exc, ValueError) else _describe(exc)
                    if run.problem(src.where, f"id {src.uid!r}: {reason}"):
                        batch.clear()
                        return False
        for (src, lp, _), res in zip(batch, paths, strict=True):
            if res is not None:
                writer.write(_alignment_record(src, lp, res, vocab, labels, args.frame_shift))
                run.utterances += 1
                run.frames += int(lp.shape[0])
        batch.clear()
        return True

    with _open_output(args.output, False, args.format) as (fh, _):
        writer = fio.ResultWriter(fh, args.format, args.frame_shift)
        bar = _Progress(sum(isinstance(s, fio.Source) for s in sources), args.quiet, "align")

        def accept(src: fio.Source) -> tuple[np.ndarray, list[int]] | None:
            nonlocal no_text
            bar.update(1)
            if src.uid not in transcripts:
                no_text += 1
                return None
            if args.format == "ctm" and (not src.uid or any(c.isspace() for c in src.uid)):
                raise ValueError(
                    f"id {src.uid!r} is empty or holds white space, which a CTM line "
                    "cannot hold; use --format jsonl"
                )
            return reader(src), vocab.encode(transcripts[src.uid])

        def add(src: fio.Source, item: tuple[np.ndarray, list[int]]) -> bool:
            batch.append((src, *item))
            return len(batch) < 64 or flush(writer)

        try:
            stopped = _feed_inputs(sources, run, accept, add, lambda: not batch or flush(writer))
        finally:
            reader.close()
            bar.close()
    run.summary(f"{no_text} utterances without a transcript" if no_text else "")
    if stopped:
        return EXIT_ERROR
    return EXIT_SKIPPED if run.skipped else EXIT_OK


def _alignment_record(
    src: fio.Source,
    lp: np.ndarray,
    res: tuple[np.ndarray, np.ndarray],
    vocab: fio.Vocabulary,
    labels: list[str],
    frame_shift: float | None,
) -> dict[str, Any]:
    path, scores = res
    spans = _token_spans(path, scores, vocab.blank)
    words = vocab.words([s[0] for s in spans], [s[1] for s in spans], [s[2] for s in spans])
    word_scores = _word_scores(vocab, spans)
    return {
        "id": src.uid,
        "text": " ".join(w for w, _, _ in words),
        "num_frames": int(lp.shape[0]),
        "log_prob": float(np.sum(scores)),
        "words": [
            _span(w, s, e, frame_shift, score=sc)
            for (w, s, e), sc in zip(words, word_scores, strict=True)
        ],
        "tokens": [_token(labels, t, s, e, sc, frame_shift) for t, s, e, sc in spans],
        "source": src.where,
    }


def _token(
    labels: list[str], t: int, s: int, e: int, sc: float, frame_shift: float | None
) -> dict[str, Any]:
    d: dict[str, Any] = {"token": labels[t], "id": t, "start_frame": s, "end_frame": e, "score": sc}
    if frame_shift:
        d["start"] = round(s * frame_shift, 4)
        d["end"] = round(e * frame_shift, 4)
    return d


def _word_scores(vocab: fio.Vocabulary, spans: list[tuple[int, int, int, float]]) -> list[float]:
    """Mean token score of each word, grouping tokens exactly as ``Vocabulary.words`` does."""
    out: list[float] = []
    for _, s, e in vocab.words(
        [t for t, *_ in spans], [x[1] for x in spans], [x[2] for x in spans]
    ):
        inside = [sc for t, ts, te, sc in spans if ts >= s and te <= e and t != vocab.delimiter]
        out.append(float(np.mean(inside)) if inside else 0.0)
    return out


# --------------------------------------------------------------------------- plot


def safe_file_name(uid: str, limit: int = 200) -> str:
    """A file name made of an utterance id, safe to create in the current folder.

    Letters and digits (any script), ``-``, ``_`` and ``.`` are kept; path separators,
    control characters and everything else become ``_``; leading dots are dropped (no ``..``,
    no hidden files) and the name is cut to ``limit`` bytes of UTF-8. An id with nothing left
    becomes ``utterance``.

    Examples
    --------
    >>> safe_file_name("../../etc/x"), safe_file_name("/abs/p.npy"), safe_file_name("..")
    ('_.._etc_x', '_abs_p.npy', 'utterance')
    """
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in uid)
    name = name.lstrip(".")
    while len(name.encode("utf-8")) > limit:
        name = name[: len(name) - max(1, (len(name.encode("utf-8")) - limit) // 4)]
    name = name.rstrip(".")
    return name or "utterance"


def cmd_plot(args: argparse.Namespace) -> int:
    """``fastctc plot``."""
    try:
        from . import plot as fplot
    except ImportError as exc:  # pragma: no cover - matplotlib missing
        raise UsageError(f'{exc}; pip install "fastctc[plot]"') from None
    labels, blank = _labels_and_blank(args)
    sources = [s for s in fio.list_sources([args.input])]
    problems = [s for s in sources if isinstance(s, fio.InputProblem)]
    if problems:
        raise UsageError(f"{problems[0].where}: {problems[0].reason}")
    srcs = [s for s in sources if isinstance(s, fio.Source)]
    if args.id is not None:
        srcs = [s for s in srcs if s.uid == args.id]
        if not srcs:
            raise UsageError(f"no utterance {args.id!r} in {args.input}.")
    src = srcs[0]
    out = args.output or safe_file_name(src.uid) + ".png"
    _check_output(out, _input_files(args, sources))
    try:
        lp = fio.load_matrix(src, len(labels), args.input_kind, args.max_bytes)
    except ValueError as exc:
        raise UsageError(f"{src.where}: {exc}") from None
    vocab = fio.Vocabulary.build(labels, blank)
    (greedy,) = _greedy_decoder(vocab, 1)([lp])
    words, title = greedy[0].words, "greedy"
    if args.lm:
        ns = argparse.Namespace(
            lm=args.lm,
            unigrams=None,
            beam_width=DEFAULT_BEAM_WIDTH,
            beam_prune_logp=DEFAULT_BEAM_PRUNE_LOGP,
            token_min_logp=DEFAULT_TOKEN_MIN_LOGP,
            threads=1,
            alpha=DEFAULT_ALPHA,
            beta=DEFAULT_BETA,
            unk_score_offset=DEFAULT_UNK_LOGP_OFFSET,
            hotword_weight=DEFAULT_HOTWORD_WEIGHT,
        )
        lm, unigrams = _resolve_lm(ns)
        (beams,) = _lm_decoder(labels, blank, ns, lm, unigrams, 1, None)([lp])
        words, title = beams[0].words, "beam + LM"
    try:
        fplot.plot_utterance(
            lp,
            labels,
            blank,
            words,
            out,
            top=args.top,
            frame_shift=args.frame_shift,
            title=f"{src.uid} ({title})",
        )
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc}") from None
    print(out)
    return EXIT_OK
