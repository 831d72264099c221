"""Accuracy and speed of CTC decoders with one 4-gram LM: fastctc vs flashlight-text.

Simulated ASR log-probabilities (../shared/data/simulate.py, 29 character labels) of the
development sentences: sentences 0-99 tune each decoder, 100-199 test it. Every decoder uses
the same KenLM 4-gram model (lm_4gram.bin), its vocabulary (vocab.txt) and the same beam
width; its LM weight and word bonus are tuned by grid search on the tuning set (lowest WER,
ties broken by CER), then it decodes the test set on one thread, timed (wall clock, one
warm-up utterance excluded). Rows:

* fastctc, pyctcdecode semantics (``build_ctcdecoder`` with unigrams), tuned with
  ``fastctc.tune.tune``;
* flashlight-text's ``LexiconDecoder`` with max merging and with log-add merging of equal
  hypotheses, and its ``LexiconFreeDecoder``;
* fastctc's lexicon mode (``build_ctcdecoder(..., lexicon=True)``) with both merge rules at
  ``beam_prune_logp`` equal to minus flashlight's ``beam_threshold`` (the same search width;
  ``--lexicon-prune`` sets another), and log-add at fastctc's default -10.

Finally ``fastctc.tune`` tunes the lexicon mode on all 200 dev utterances on every core
(alpha x beta x log_add), timed.

The flashlight wheels carry no KenLM binding, so the LM is a Python subclass of
``flashlight.lib.text.decoder.LM`` over the ``kenlm`` module. Its scores are natural logs
(KenLM's log10 times ln 10), so flashlight's ``lm_weight`` is on the same scale as fastctc's
``alpha``; the table also shows the weight on a log10 scale. The lexicon is a trie of the
vocabulary's spellings with each word's unigram score (smeared with the maximum), unknown
words are off (``unk_score=-inf``), the space is the silence token (``sil_score=0``) and every
token is tried at every frame (``beam_size_token=29``). ``beam_threshold`` is 15: at the tuned
settings it gives the same tuning WER and CER as 25, 50 and 100 in less time (10 starts to
change the results), so flashlight is timed at its fastest setting that loses nothing. Two
spellings are tuned: letters followed by the space token (the word ends when its space is
read) and letters only; the one with the lower tuning WER is kept for the other merge rule.
Letters only lets a word follow the previous one without a space, and the decoder splits
unknown or misheard words into short known ones: on these data it loses by about ten points of
WER and is several times slower (more word ends, each a Python LM call). The lexicon-free
decoder sees the same LM through a wrapper that gathers the letters of the current word and
scores the word when the space token or the end of the utterance comes; its word bonus is
added to each word's LM score (scaled so that each word gets exactly ``word_score``).

The last section decodes the test set at the settings of an earlier comparison
(lm_weight 1.5 with word bonus 1 or 2, alpha 0.7 with beta 2.5) with the flashlight weight
read on both scales, to show which scale those figures used.

    python bench/bench_accuracy.py            # full grids: about 10 minutes
    python bench/bench_accuracy.py --quick --n-tune 20 --n-test 20   # a minute or two
    python bench/bench_accuracy.py --beam 32 --beam-threshold 50

Needs ``pip install flashlight-text kenlm`` and the shared data folder ``../shared/data``
beside the repository (the script says what is missing and exits with status 1).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from _data import DATA, load_simulator

import fastctc
from fastctc.metrics import cer, wer
from fastctc.tune import tune

NEEDED = ("simulate.py", "dev_sentences.txt", "lm_4gram.bin", "vocab.txt")
LN10 = math.log(10.0)
SIL = 1  # the space: word separator and flashlight's silence token
BLANK = 0

# grids (LM weights on the natural-log scale)
FULL = {
    "fastctc": (
        [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3],
        [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4],
    ),
    "lexicon": ([0.4, 0.5, 0.65, 0.8, 1.0], [0, 1, 2, 3]),
    "letters": ([0.5, 0.8], [-1, 0]),
    "free": ([0.5, 0.7], [4, 6]),
}
QUICK = {
    "fastctc": ([0.5, 0.7, 0.9], [1, 2.5]),
    "lexicon": ([0.5, 0.7], [1, 2]),
    "letters": ([0.65], [0]),
    "free": ([0.5], [5]),
}


def _die(msg: str) -> None:
    print(msg, file=sys.stderr)
    sys.exit(1)


def check_requirements() -> None:
    missing = [n for n in NEEDED if not (DATA / n).exists()]
    if missing:
        _die(
            f"missing {', '.join(missing)} in {DATA}: this benchmark reads the shared data "
            "folder beside the repository (../shared/data: the simulator, the dev sentences, "
            "the KenLM model and its vocabulary)."
        )
    for mod, pkg in (("flashlight.lib.text.decoder", "flashlight-text"), ("kenlm", "kenlm")):
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            _die(f"{pkg} is not installed ({exc}): pip install flashlight-text kenlm")


def norm(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Row:
    name: str
    params: str
    tune_s: float
    wer: float = math.nan
    cer: float = math.nan
    s_per_100: float = math.nan


@dataclass
class Split:
    lps: list[np.ndarray]
    refs: list[str]


def grid_search(
    decode: Callable[[float, float, Split], list[str]],
    data: Split,
    weights: Sequence[float],
    bonuses: Sequence[float],
    label: str,
) -> tuple[tuple[float, float, float, float], float]:
    """Decode ``data`` at every (weight, bonus); the best (weight, bonus, WER, CER) by WER then
    CER, and the seconds the whole grid took."""
    t0 = time.perf_counter()
    best = None
    for w, b in itertools.product(weights, bonuses):
        t1 = time.perf_counter()
        hyps = [norm(h) for h in decode(w, b, data)]
        point = (w, b, wer(data.refs, hyps), cer(data.refs, hyps))
        print(
            f"  {label}: weight {w:g} bonus {b:g}: WER {100 * point[2]:.2f}% "
            f"CER {100 * point[3]:.2f}% ({time.perf_counter() - t1:.1f} s)",
            flush=True,
        )
        if best is None or point[2:] < best[2:]:
            best = point
    return best, time.perf_counter() - t0


def timed_test(decode_one: Callable[[np.ndarray], str], test: Split) -> tuple[list[str], float]:
    """Test-set hypotheses and seconds per 100 utterances (one warm-up call not timed)."""
    decode_one(test.lps[0])
    t0 = time.perf_counter()
    hyps = [norm(decode_one(x)) for x in test.lps]
    return hyps, 100.0 * (time.perf_counter() - t0) / len(test.lps)


def score_row(row: Row, test: Split, hyps: list[str], s_per_100: float) -> Row:
    row.wer, row.cer, row.s_per_100 = wer(test.refs, hyps), cer(test.refs, hyps), s_per_100
    return row


# ---------------------------------------------------------------------------- fastctc


def fastctc_row(name, decoder, tune_set, test, alphas, betas, beam, prune=-10.0) -> Row:
    """Tune ``decoder`` with fastctc.tune on one thread, then time it on the test set
    (``prune``: ``beam_prune_logp``)."""
    kw = {"beam_width": beam, "num_threads": 1, "beam_prune_logp": prune}
    decoder.decode_batch(None, tune_set.lps[:1], **kw)  # warm-up
    t0 = time.perf_counter()
    res = tune(decoder, tune_set.lps, tune_set.refs, alphas, betas, **kw)
    tune_s = time.perf_counter() - t0
    print(
        f"  {name}: best alpha {res.alpha:g} beta {res.beta:g}, tuning WER "
        f"{100 * res.best.wer:.2f}% ({len(res.grid)} points, {tune_s:.1f} s)",
        flush=True,
    )
    decoder.reset_params(alpha=res.alpha, beta=res.beta)
    decoder.decode_batch(None, test.lps[:1], **kw)  # warm-up
    t0 = time.perf_counter()
    hyps = [norm(h) for h in decoder.decode_batch(None, test.lps, **kw)]
    s100 = 100.0 * (time.perf_counter() - t0) / len(test.lps)
    row = Row(name, f"alpha {res.alpha:g}, beta {res.beta:g}", tune_s)
    return score_row(row, test, hyps, s100)


def fastctc_lexicon_rows(labels, words, tune_set, test, alphas, betas, beam, prune) -> list[Row]:
    """fastctc's lexicon mode (flashlight's LexiconDecoder semantics), max and log-add
    merging with ``beam_prune_logp=prune``, and log-add with the default -10; no rows where
    the installed fastctc lacks the mode."""
    rows = []
    for log_add, p in ((True, prune), (False, prune), (True, -10.0)):
        try:
            dec = fastctc.build_ctcdecoder(
                labels,
                kenlm_model_path=str(DATA / "lm_4gram.bin"),
                unigrams=words,
                alpha=alphas[0],
                beta=betas[0],
                lexicon=True,
                unk_score=float("-inf"),
                sil_score=0.0,
                log_add=log_add,
            )
        except TypeError as exc:
            print(f"  fastctc lexicon mode unavailable in this fastctc ({exc}); rows skipped")
            return rows
        name = f"fastctc lexicon ({'log-add' if log_add else 'max'}, prune {p:g})"
        rows.append(fastctc_row(name, dec, tune_set, test, alphas, betas, beam, p))
    return rows


def tune_all(labels, words, lps, refs, alphas, betas, beam, prune) -> None:
    """How long fastctc.tune takes for the lexicon mode on every dev utterance, all cores."""
    dec = fastctc.build_ctcdecoder(
        labels, kenlm_model_path=str(DATA / "lm_4gram.bin"), unigrams=words, lexicon=True
    )
    dec.decode_batch(None, lps[:1], beam_width=beam)  # warm-up
    t0 = time.perf_counter()
    res = tune(
        dec,
        lps,
        refs,
        alphas,
        betas,
        beam_width=beam,
        beam_prune_logp=prune,
        log_adds=[False, True],
    )
    print(
        f"\n# fastctc.tune, lexicon mode, {len(lps)} dev utterances, {len(res.grid)} settings "
        f"({len(alphas)} alphas x {len(betas)} betas x log_add off/on), beam {beam}, prune "
        f"{prune:g}, all {os.cpu_count()} cores: {time.perf_counter() - t0:.1f} s; best "
        f"alpha {res.alpha:g} beta {res.beta:g} log_add {res.best.log_add}: WER "
        f"{100 * res.best.wer:.2f}%"
    )


# ---------------------------------------------------------------------------- flashlight


def flashlight_lms(model, words: Sequence[str], labels: Sequence[str]):
    """Word-level and character-level (lexicon-free) flashlight LMs over a kenlm.Model,
    scores in natural logs."""
    import kenlm
    from flashlight.lib.text.decoder import LM, LMState

    def begin(start_with_nothing: bool):
        ks = kenlm.State()
        if start_with_nothing:
            model.NullContextWrite(ks)
        else:
            model.BeginSentenceWrite(ks)
        return ks

    def end_score(ks) -> float:
        return model.BaseScore(ks, "</s>", kenlm.State()) * LN10

    class WordLM(LM):
        """Token index = word index in ``words``; each LMState maps to (KenLM state, the
        score of the word that led to it). Child states are unique per word history."""

        def __init__(self):
            LM.__init__(self)
            self.states = {}

        def start(self, start_with_nothing):
            state = LMState()
            self.states = {state: (begin(start_with_nothing), 0.0)}
            return state

        def score(self, state, token_index):
            child = state.child(token_index)
            hit = self.states.get(child)
            if hit is None:
                out = kenlm.State()
                s = model.BaseScore(self.states[state][0], words[token_index], out) * LN10
                self.states[child] = hit = (out, s)
            return child, hit[1]

        def finish(self, state):
            return state, end_score(self.states[state][0])

    class SpellingLM(LM):
        """Token index = label index; letters gather into the current word, which KenLM
        scores (plus ``word_bonus``) when the separator comes or at the end. Each LMState
        maps to (KenLM state, letters so far, score of the step that led to it)."""

        def __init__(self):
            LM.__init__(self)
            self.states = {}
            self.word_bonus = 0.0

        def _word(self, ks, letters):
            out = kenlm.State()
            return out, model.BaseScore(ks, letters, out) * LN10 + self.word_bonus

        def start(self, start_with_nothing):
            state = LMState()
            self.states = {state: (begin(start_with_nothing), "", 0.0)}
            return state

        def score(self, state, token_index):
            child = state.child(token_index)
            hit = self.states.get(child)
            if hit is None:
                ks, letters, _ = self.states[state]
                if token_index != SIL:
                    hit = (ks, letters + labels[token_index], 0.0)
                elif letters:
                    out, s = self._word(ks, letters)
                    hit = (out, "", s)
                else:
                    hit = (ks, "", 0.0)
                self.states[child] = hit
            return child, hit[2]

        def finish(self, state):
            ks, letters, _ = self.states[state]
            s = 0.0
            if letters:
                ks, s = self._word(ks, letters)
            return state, s + end_score(ks)

    return WordLM(), SpellingLM()


class Flashlight:
    """flashlight-text decoders over one kenlm model, built per setting."""

    def __init__(self, labels, words, beam, beam_threshold):
        import kenlm
        from flashlight.lib.text import decoder as fl

        self.fl, self.labels, self.beam, self.thr = fl, labels, beam, beam_threshold
        index = {c: i for i, c in enumerate(labels)}
        # words the labels can spell (all of vocab.txt for the 29 character labels)
        self.words = [w for w in words if w and all(c in index and index[c] > SIL for c in w)]
        self.spell = {w: [index[c] for c in w] for w in self.words}
        self.word_lm, self.free_lm = flashlight_lms(
            kenlm.Model(str(DATA / "lm_4gram.bin")), self.words, labels
        )
        self.tries = {}

    def trie(self, spelling: str):
        """The lexicon trie; ``spelling`` "letters+space" or "letters"."""
        if spelling not in self.tries:
            fl = self.fl
            trie = fl.Trie(len(self.labels), SIL)
            start = self.word_lm.start(False)
            tail = [SIL] if spelling == "letters+space" else []
            for i, w in enumerate(self.words):
                _, unigram = self.word_lm.score(start, i)
                trie.insert(self.spell[w] + tail, i, unigram)
            trie.smear(fl.SmearingMode.MAX)
            self.tries[spelling] = trie
        return self.tries[spelling]

    def lexicon(self, lm_weight, word_score, log_add, spelling):
        fl = self.fl
        opts = fl.LexiconDecoderOptions(
            beam_size=self.beam,
            beam_size_token=len(self.labels),
            beam_threshold=self.thr,
            lm_weight=lm_weight,
            word_score=word_score,
            unk_score=float("-inf"),
            sil_score=0.0,
            log_add=log_add,
            criterion_type=fl.CriterionType.CTC,
        )
        dec = fl.LexiconDecoder(
            opts, self.trie(spelling), self.word_lm, SIL, BLANK, len(self.words), [], False
        )
        words, n = self.words, len(self.words)

        def one(x: np.ndarray) -> str:
            x = np.ascontiguousarray(x, dtype=np.float32)
            best = dec.decode(x.ctypes.data, x.shape[0], x.shape[1])[0]
            return " ".join(words[i] for i in best.words if 0 <= i < n)

        return one

    def lexicon_free(self, lm_weight, word_score, log_add):
        fl = self.fl
        opts = fl.LexiconFreeDecoderOptions(
            beam_size=self.beam,
            beam_size_token=len(self.labels),
            beam_threshold=self.thr,
            lm_weight=lm_weight,
            sil_score=0.0,
            log_add=log_add,
            criterion_type=fl.CriterionType.CTC,
        )
        lm, labels = self.free_lm, self.labels
        dec = fl.LexiconFreeDecoder(opts, lm, SIL, BLANK, [])

        def one(x: np.ndarray) -> str:
            lm.word_bonus = word_score / lm_weight
            x = np.ascontiguousarray(x, dtype=np.float32)
            best = dec.decode(x.ctypes.data, x.shape[0], x.shape[1])[0]
            # frame-level path: merge repeats, drop blanks
            return "".join(labels[t] for t, _ in itertools.groupby(best.tokens) if t > BLANK)

        return one


def flashlight_row(name, make, tune_set, test, weights, bonuses) -> Row:
    (w, b, tw, _), tune_s = grid_search(
        lambda w, b, d: list(map(make(w, b), d.lps)), tune_set, weights, bonuses, name
    )
    print(
        f"  {name}: best lm_weight {w:g} word_score {b:g}, tuning WER {100 * tw:.2f}% "
        f"({tune_s:.1f} s)",
        flush=True,
    )
    hyps, s100 = timed_test(make(w, b), test)
    row = Row(name, f"lm_weight {w:g} ({w * LN10:.2f} log10), word_score {b:g}", tune_s)
    return score_row(row, test, hyps, s100)


# ---------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-tune", type=int, default=100, help="tuning sentences (0..n-1, max 100)")
    ap.add_argument("--n-test", type=int, default=100, help="test sentences (100.., max 100)")
    ap.add_argument("--beam", type=int, default=64)
    ap.add_argument("--beam-threshold", type=float, default=15.0, help="flashlight's (default 15)")
    ap.add_argument(
        "--lexicon-prune",
        type=float,
        default=None,
        help="beam_prune_logp of fastctc's lexicon-mode rows (default: minus flashlight's "
        "--beam-threshold, the same width; one more row has fastctc's default -10)",
    )
    ap.add_argument("--quick", action="store_true", help="small grids")
    ap.add_argument("--no-reference", action="store_true", help="skip the last section")
    args = ap.parse_args()
    check_requirements()
    grids = QUICK if args.quick else FULL
    t_start = time.perf_counter()

    sim = load_simulator()
    labels = sim.CHAR_LABELS
    sents = (DATA / "dev_sentences.txt").read_text().splitlines()
    n_tune, n_test = min(args.n_tune, 100), min(args.n_test, 100)

    def split(indices) -> Split:
        lps = [np.ascontiguousarray(sim.simulate_char(sents[i], i), np.float32) for i in indices]
        return Split(lps, [norm(sents[i]) for i in indices])

    tune_set, test = split(range(n_tune)), split(range(100, 100 + n_test))
    words = (DATA / "vocab.txt").read_text().split()
    beam = args.beam
    greedy = [
        norm("".join(labels[t] for t in fastctc.greedy_decode(x).tokens.tolist())) for x in test.lps
    ]
    frames = sum(x.shape[0] for x in test.lps) / n_test
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; numpy "
        f"{np.__version__}, fastctc {fastctc.__version__}, flashlight-text "
        f"{_version('flashlight-text')}, kenlm {_version('kenlm')}"
    )
    print(
        f"# tuning {n_tune} / test {n_test} utterances ({frames:.0f} frames avg, 29 labels), "
        f"beam {beam}, one thread; lm_4gram.bin, {len(words)} words; test greedy WER "
        f"{100 * wer(test.refs, greedy):.2f}% CER {100 * cer(test.refs, greedy):.2f}%"
    )
    print(f"# {'quick' if args.quick else 'full'} grids; tuning progress:", flush=True)

    rows: list[Row] = []
    fa, fb = grids["fastctc"]
    lm_kw = dict(kenlm_model_path=str(DATA / "lm_4gram.bin"), unigrams=words)
    dec = fastctc.build_ctcdecoder(labels, **lm_kw)
    rows.append(fastctc_row("fastctc (pyctcdecode)", dec, tune_set, test, fa, fb, beam))

    fl = Flashlight(labels, words, beam, args.beam_threshold)
    lw, ws = grids["lexicon"]
    # spelling convention: tuned with log-add merging, the better one kept (full run, 100
    # tuning sentences: letters+space 14.21% WER, letters only 25.00%)
    spelled = {}
    for spelling, (sw, sb) in (("letters+space", (lw, ws)), ("letters", grids["letters"])):
        (w, b, tw, tc), t = grid_search(
            lambda w, b, d, sp=spelling: list(map(fl.lexicon(w, b, True, sp), d.lps)),
            tune_set,
            sw,
            sb,
            f"flashlight lexicon (log-add, {spelling})",
        )
        spelled[spelling] = (w, b, tw, tc, t)
    spelling = min(spelled, key=lambda s: spelled[s][2:4])
    for s, (w, b, tw, tc, t) in spelled.items():
        print(
            f"  spelling {s}: best lm_weight {w:g} word_score {b:g}, tuning WER "
            f"{100 * tw:.2f}% CER {100 * tc:.2f}% ({t:.1f} s){'  <- kept' * (s == spelling)}"
        )
    for log_add in (True, False):
        name = f"flashlight lexicon ({'log-add' if log_add else 'max'})"
        if log_add:  # already tuned above
            w, b, tw, _, t = spelled[spelling]
            hyps, s100 = timed_test(fl.lexicon(w, b, True, spelling), test)
            row = Row(name, f"lm_weight {w:g} ({w * LN10:.2f} log10), word_score {b:g}", t)
            rows.append(score_row(row, test, hyps, s100))
        else:
            rows.append(
                flashlight_row(
                    name, lambda w, b: fl.lexicon(w, b, False, spelling), tune_set, test, lw, ws
                )
            )
    rows.append(
        flashlight_row(
            "flashlight lexicon-free (log-add)",
            lambda w, b: fl.lexicon_free(w, b, True),
            tune_set,
            test,
            *grids["free"],
        )
    )
    if args.lexicon_prune is None:
        args.lexicon_prune = -args.beam_threshold
    rows += fastctc_lexicon_rows(labels, words, tune_set, test, fa, fb, beam, args.lexicon_prune)

    ref = next(r for r in rows if r.name == "flashlight lexicon (log-add)").s_per_100
    print(
        f"\n# test set: {n_test} utterances, beam {beam}, flashlight beam_threshold "
        f"{args.beam_threshold:g}, spelling {spelling}; LM scores in natural logs\n"
    )
    print(
        f"{'decoder':<40} {'tuned parameters':<46} {'WER':>7} {'CER':>7} "
        f"{'s/100 utt':>9} {'x flashlight':>12} {'tuning s':>8}"
    )
    for r in rows:
        print(
            f"{r.name:<40} {r.params:<46} {100 * r.wer:6.2f}% {100 * r.cer:6.2f}% "
            f"{r.s_per_100:9.3f} {ref / r.s_per_100:12.2f} {r.tune_s:8.1f}"
        )
    print(
        "\n(x flashlight: how many times faster than flashlight's lexicon decoder with "
        "log-add merging; times on one thread, warm-up excluded; flashlight's tuning time "
        "covers the kept spelling's grid)"
    )
    print("flashlight lexicon spellings (log-add, best tuning setting of each):")
    for s, (w, b, tw, tc, t) in spelled.items():
        print(
            f"  {s:<13} lm_weight {w:g} word_score {b:g}: tuning WER {100 * tw:.2f}% "
            f"CER {100 * tc:.2f}%, grid {t:.1f} s{'  (kept)' * (s == spelling)}"
        )

    if not args.no_reference:
        print(
            "\n# earlier comparison's settings on the test set (flashlight weight read as "
            "log10 or as natural-log units):"
        )
        for log_add, b in ((True, 1.0), (False, 2.0)):
            for unit, w in (("log10", 1.5 / LN10), ("ln", 1.5)):
                hyps, _ = timed_test(fl.lexicon(w, b, log_add, spelling), test)
                print(
                    f"  flashlight lexicon ({'log-add' if log_add else 'max'}) lm_weight 1.5 "
                    f"({unit}; {w:.3f} ln) word_score {b:g}: WER "
                    f"{100 * wer(test.refs, hyps):.2f}% CER {100 * cer(test.refs, hyps):.2f}%"
                )
        dec.reset_params(alpha=0.7, beta=2.5)
        hyps = [norm(h) for h in dec.decode_batch(None, test.lps, beam_width=beam, num_threads=1)]
        print(
            f"  fastctc (pyctcdecode) alpha 0.7 beta 2.5: WER {100 * wer(test.refs, hyps):.2f}% "
            f"CER {100 * cer(test.refs, hyps):.2f}%"
        )
    both = split(range(200)) if n_tune == 100 and n_test == 100 else None
    if both is not None:
        tune_all(labels, words, both.lps, both.refs, fa, fb, beam, args.lexicon_prune)
    print(f"\n# total {time.perf_counter() - t_start:.0f} s")


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    main()
