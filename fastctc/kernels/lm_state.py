"""The LM beam search's state: named bundles of arrays, their columns and the status protocol.

:func:`fastctc.kernels.lm_beam.lm_beam_search` takes four bundles besides the
log-probabilities, each a ``collections.namedtuple`` (Numba reads the fields by name):

* :class:`Tokens`: per label of the vocabulary, its kind (``K_*``) and its text;
* :class:`SearchParams`: the call's scalars, including how LM scores are obtained
  (``score_path``, ``partial_mode``, decided once by :mod:`fastctc.lm.scoring`);
* :class:`Model`: the language model's tables (:class:`ScoreCache`, :class:`Ngrams`) and
  the call's :class:`Hotwords`;
* :class:`Workspace`: everything the search writes: the beams (:class:`Beams`), the word
  trie (:class:`TextNodes`), the frame's candidates (:class:`Candidates`), the token and
  word-frame chains (:class:`Chains`), the LM queries (:class:`Queries`), a cache of
  partial-word scores, the progress record ``io`` and the final beams.

Integer columns of the 2-D arrays are named below; each name means one thing.

Progress record and status
--------------------------
``io`` (int64, ``IO_COLS`` slots) is what survives between calls of one search. The kernel
returns one status:

* ``DONE``: the final beams, best first, are ``out_i[:io[IO_NOUT]]`` / ``out_f``; when
  ``io[IO_STREAM]`` is set, the frames given were searched and the final step skipped (the
  beams are ``beams``; a later call with more frames goes on, one with none finishes).
* ``GROW_TEXT`` / ``GROW_CAND``: frame ``io[IO_T]`` needs ``io[IO_NEED]`` text nodes or
  candidates; the caller grows the pool (keeping ``io[IO_NTEXT]`` nodes) and calls again.
  The frame restarts from the beams, which it has not touched yet.
* ``PENDING``: LM scores are missing (see :mod:`fastctc.lm.queries`); ``io[IO_NQ]`` queries
  are in ``Queries`` when the resolver declined, none when it answered into tables that were
  reallocated since. The caller answers, passes the current tables and calls again. When
  ``io[IO_RESUME] > 0`` the frame's first ``io[IO_RESUME]`` candidates are kept and only the
  deferred word completions among them are revisited; otherwise the frame restarts.
* ``ABORTED``: ``abort[0]`` was set (Ctrl-C); frame ``io[IO_T]`` was not started.
"""

from collections import namedtuple

#: Status codes of ``lm_beam_search``.
DONE = 0
PENDING = 1
GROW_TEXT = 2
GROW_CAND = 3
ABORTED = 4

#: How word scores are obtained (``SearchParams.score_path``).
SP_NONE = 0  # no language model: only hotwords score words
SP_NGRAM = 1  # n-gram tables: every word scored in the kernel, no query ever
SP_CACHE = 2  # a score cache filled on demand by queries (KenLM, custom models)
#: How the unfinished word is scored (``SearchParams.partial_mode``).
PARTIAL_NONE = 0  # no language model
PARTIAL_UNIGRAMS = 1  # LanguageModel: unk offset unless the part begins a unigram
PARTIAL_QUERY = 2  # custom model: its score_partial_token, cached, queried when missing

#: Word ids of the score cache (``KernelTables`` numbers words this way): the empty word, the
#: one id of every word the model does not know, then the unigrams, then the others.
WORD_EMPTY = 0
WORD_UNKNOWN = 1
FIRST_UNIGRAM = 2

#: Token kinds (``Tokens.kind``).
K_BLANK = 0
K_SPACE = 1  # word delimiter of a character vocabulary: ends the word, adds no character
K_BPE_START = 2  # "▁xx": ends the previous word and starts a new one with "xx"
K_NORMAL = 3

#: Integer columns of a beam (``Beams.i``).
B_TEXT = 0  # text node: the beam's finished words
B_PLEN = 1  # characters of the unfinished word
B_PNTOK = 2  # tokens of the unfinished word
B_LAST = 3  # last label of the path (blank included)
B_PSTART = 4  # first frame of the unfinished word (-1: none)
B_PEND = 5  # frame after its last label
B_FNODE = 6  # word-frame chain node (Chains.frames)
B_TNODE = 7  # token chain node (Chains.tokens)
B_COLS = 8

#: Integer columns of a text node (``TextNodes.i``): one more word after its parent.
N_PARENT = 0
N_LMSTATE = 1  # LM state id after the node's words (score cache; -1 otherwise)
N_VOCAB = 2  # vocabulary id of the node's word in the n-gram tables (-1 otherwise)
N_HW = 3  # hotwords among the node's words
N_NWORDS = 4  # words of the node
N_COLS = 5

#: Integer columns of a candidate (``Candidates.i``) during a frame.
C_TEXT = 0  # text node, or DEFERRED / DROPPED
C_PLEN = 1
C_PNTOK = 2
C_LAST = 3
C_PSTART = 4
C_PEND = 5
C_SRC = 6  # beam whose fields the candidate keeps (the merged path met last)
C_FAPPEND = 7  # 1: the frames of a finished word are appended to the word-frame chain
C_NEWTOK = 8  # 1: the label is a new token of the path
C_SLOT = 9  # slot in the merge table (cleared after the frame)
C_TSRC = 10  # beam whose tokens the candidate keeps: the merged path with the best acoustics
C_TNEW = 11  # C_NEWTOK of that path
#: A deferred word completion (its LM score is not cached yet): the parent text node, word
#: id (-1: unknown string), token node and token count of the word, word hash (uint64 bits).
C_DPARENT = 12
C_DWID = 13
C_DTN = 14
C_DNT = 15
C_DHASH = 16
C_COLS = 17
#: ``C_TEXT`` of a deferred completion, and of one dropped for good (its bound cannot survive).
DEFERRED = -1
DROPPED = -2

#: Integer columns of a final candidate (``Candidates.i`` in the last step, where the
#: candidate arrays are reused: ``logit`` holds the merged acoustic score, ``part`` the best
#: merged path's acoustic score, ``last`` the lowest merged beam score, ``score`` LM + hotword).
F_SRC = 0  # beam the final candidate comes from
F_TOKNODE = 1  # token chain of the merged path with the best acoustic score
F_LMSTATE = 2  # LM state id after the last word (score cache; -1 otherwise)
F_VOCAB = 3  # vocabulary id of the last word (n-gram tables; -1 otherwise)
F_SLOT = 4

#: Columns of the final beams (``out_i``); ``out_f`` holds (acoustic score, combined score).
O_TOKNODE = 0
O_FNODE = 1
O_LMSTATE = 2
O_VOCAB = 3
O_TEXT = 4
O_COLS = 5

#: Query rows (``Queries.rows``): kind, LM state id, word id, token node, token count, eos.
Q_WORD = 0  # the word's string is not in the word table: resolve it to an id, then score
Q_LM = 1  # the (state, word id, eos) score is missing
Q_PARTIAL = 2  # the partial-word score is missing (PARTIAL_QUERY only)
Q_COLS = 6

#: Slots of the progress record ``io``.
IO_T = 0  # current frame
IO_NBEAMS = 1  # beams alive
IO_NTEXT = 2  # text nodes used
IO_NFC = 3  # word-frame chain nodes used
IO_NTK = 4  # token chain nodes used
IO_NQ = 5  # queries pending
IO_NEED = 6  # capacity asked for by GROW_TEXT / GROW_CAND
IO_NOUT = 7  # final beams
IO_RESUME = 8  # > 0: resume the stopped frame from its io[IO_RESUME] candidates
IO_STREAM = 9  # != 0: return DONE after the given frames without the final step (streaming)
IO_COLS = 10

#: Answers of the resolver callback (0, what a failed ctypes callback returns, declines).
RESOLVE_DECLINED = 0  # not answered (or failed): return the queries to the caller
RESOLVE_DONE = 1  # answered into the tables the kernel holds: go on
RESOLVE_STALE = 2  # answered, but the tables were reallocated: return for the new ones

Frames = namedtuple("Frames", ["x", "top", "lse", "cols", "off", "lo", "hi", "t0"])
Frames.__doc__ = """The frames a search reads (:mod:`fastctc.kernels.lm_frames`): row ``r`` is frame
``t0 + r``; its log-probability at column ``c`` is ``(x[r, c] - top[r]) - lse[r]`` clipped to
``[lo, hi]``, and only the columns ``cols[off[r]:off[r + 1]]`` can be tried."""

Tokens = namedtuple("Tokens", ["kind", "codes", "offsets"])
Tokens.__doc__ = "Per label c: kind (``K_*``), code points ``codes[offsets[c]:offsets[c + 1]]``."

SearchParams = namedtuple(
    "SearchParams",
    [
        "blank",  # int: the blank label
        "beam_width",  # int
        "beam_prune_logp",  # float <= 0
        "token_min_logp",  # float
        "prune_history",  # bool
        "n_hist",  # int: words of history for prune_history (order - 1)
        "hw_weight",  # float: score per hotword
        "score_path",  # int SP_*
        "partial_mode",  # int PARTIAL_*
        "have_unigrams",  # bool: a unigram list was given
        "n_unigrams",  # int
        "unk_offset",  # float: log10 offset of unknown words and parts
        "can_bound",  # bool: word scores are bounded by alpha_ln10 * (0.5 + oov) + beta
        "alpha_ln10",  # float
        "beta",  # float
    ],
)
SearchParams.__doc__ = "The scalars of one search (see the field comments in the source)."

ScoreCache = namedtuple(
    "ScoreCache",
    [
        "word_keys",
        "word_vals",
        "lm_keys",
        "lm_score",
        "lm_next",
        "part_keys",
        "part_vals",
        "prefixes",
    ],
)
ScoreCache.__doc__ = """Hash tables of :class:`fastctc.lm.tables.KernelTables`: word hash ->
word id; (2 * state + eos, word id) -> (score, next state); partial-word hash -> score; and
the set of unigram prefixes (``PARTIAL_UNIGRAMS``)."""

Ngrams = namedtuple("Ngrams", ["w_info", "uni", "keys", "vals", "meta", "ab"])
Ngrams.__doc__ = """n-gram tables (``fastctc.kernels.ngram``), ``w_info[word id] = 2 * vocabulary
id + oov`` and ``ab = (alpha, beta)``."""

Hotwords = namedtuple("Hotwords", ["word_keys", "pre_keys", "pre_minlen"])
Hotwords.__doc__ = "Set of hotword hashes; hotword prefixes -> length of the shortest such word."

Model = namedtuple("Model", ["cache", "ngrams", "hotwords"])
Model.__doc__ = "Where word scores come from: a ScoreCache, Ngrams and the call's Hotwords."

Beams = namedtuple("Beams", ["i", "logit", "phash", "part", "score"])
Beams.__doc__ = """``i[:, B_*]``, acoustic score, hash of the unfinished word, its score, and the
beam's combined score."""

TextNodes = namedtuple("TextNodes", ["i", "word", "hist", "lm", "table_keys", "table_vals"])
TextNodes.__doc__ = """The word trie: ``i[:, N_*]``, word hash, history key (prune_history),
cumulative LM + hotword score; and the (parent, word) -> node table."""

Candidates = namedtuple(
    "Candidates", ["i", "logit", "score", "phash", "part", "last", "merge_keys", "merge_vals"]
)
Candidates.__doc__ = """One frame's candidates: ``i[:, C_*]``, acoustic score, combined
score, word-part hash and score, score of the source beam; and the merge table."""

Chains = namedtuple("Chains", ["frames", "tokens"])
Chains.__doc__ = """Word-frame chain nodes (parent, start, end) and token chain nodes (parent,
label, frame), shared by all beams of a search."""

Queries = namedtuple("Queries", ["rows", "hashes"])
Queries.__doc__ = "Pending LM queries: ``rows[:, Q_COLS]`` and the word (part) hash of each."

Workspace = namedtuple(
    "Workspace",
    [
        "beams",
        "text",
        "cand",
        "chains",
        "queries",
        "pc_keys",
        "pc_vals",
        "io",
        "out_i",
        "out_f",
    ],
)
Workspace.__doc__ = """What one search writes (see the module docstring); ``pc_keys`` /
``pc_vals`` cache partial-word scores by hash for the search."""
