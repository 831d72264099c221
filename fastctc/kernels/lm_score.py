"""Word and word-part scores of the LM beam search, and the word trie they are stored in.

Every LM score the search uses comes through :func:`word_score` (a finished word) or
:func:`partial_score` (the unfinished word); ``SearchParams.score_path`` and
``partial_mode`` say where the score comes from, and these two functions are the only places
that read them. The arithmetic of a word score is pyctcdecode's:
``alpha * ln(10) * (log10 P(word | context) + oov offset [+ log10 P(</s> | ...)]) + beta``.
"""

import numpy as np

from ..defaults import AVG_TOKEN_LEN, LOG10_TO_LN
from ._jit import jit
from .lm_cache import FNV_OFFSET, fnv_extend, pair_key, table_find, table_slot_for_insert
from .lm_state import (
    FIRST_UNIGRAM,
    IO_NTEXT,
    N_HW,
    N_LMSTATE,
    N_NWORDS,
    N_PARENT,
    N_VOCAB,
    PARTIAL_QUERY,
    PARTIAL_UNIGRAMS,
    SP_NGRAM,
    SP_NONE,
    WORD_EMPTY,
    WORD_UNKNOWN,
)
from .ngram import M_BOS, M_BOUNDARY, M_EOS, M_ORDER, log10_prob, push_word

#: What :func:`word_score` found: the score, or a miss (the word's string has no id yet, or
#: its score is not cached).
FOUND = 0
MISS_WORD = 1
MISS_SCORE = 2


@jit(_nrt=False)
def lookup_word(word_keys, word_vals, h):
    """Word id of the word with hash ``h``, or -1 when the table does not know it yet."""
    slot = table_find(word_keys, h)
    if slot < 0:
        return -1
    return word_vals[slot]


@jit(_nrt=False)
def lookup_lm(cache, state, wid, eos):
    """(score, next state) for ``wid`` after ``state``; next state -1 on a miss."""
    slot = table_find(cache.lm_keys, pair_key(state * 2 + eos, wid))
    if slot < 0:
        return 0.0, -1
    nxt = cache.lm_next[slot]
    sc = cache.lm_score[slot]
    if nxt < 0 or sc != sc:
        return 0.0, -1
    return sc, nxt


@jit(_nrt=False)
def ngram_word_score(ngrams, params, tn_i, parent, wid, eos, ctx):
    """(weighted score, vocabulary id) of word ``wid`` after text node ``parent``, from the
    n-gram tables. The context is the vocabulary ids of the last ``order - 1`` nodes
    (``N_VOCAB``), then ``<s>`` at the root; ``ctx`` is scratch of ``order`` entries."""
    meta = ngrams.meta
    order = meta[M_ORDER]
    n = 0
    cur = parent
    while n < order - 1:
        if cur <= 0:
            if meta[M_BOS] >= 0:
                ctx[n] = meta[M_BOS]
                n += 1
            break
        ctx[n] = tn_i[cur, N_VOCAB]
        n += 1
        cur = tn_i[cur, N_PARENT]
    info = ngrams.w_info[wid]
    vocab = info >> 1
    s = np.float64(log10_prob(ctx, n, vocab, ngrams.uni, ngrams.keys, ngrams.vals, meta))
    if info & 1:
        s += params.unk_offset
    if eos and meta[M_BOUNDARY]:
        n = push_word(ctx, n, vocab, order - 1)
        eos_id = meta[M_EOS]
        s = s + np.float64(log10_prob(ctx, n, eos_id, ngrams.uni, ngrams.keys, ngrams.vals, meta))
    return ngrams.ab[0] * s * LOG10_TO_LN + ngrams.ab[1], vocab


@jit(_nrt=False)
def word_score(model, params, tn_i, parent, h, has_word, eos, ctx):
    """The LM score of a finished word (hash ``h``; the empty word when not ``has_word``)
    after text node ``parent``, plus the sentence end when ``eos``.

    Returns ``(found, score, lm state id, vocabulary id, word id)``: ``found`` is ``FOUND``,
    or on the cache path ``MISS_WORD`` (the word's string has no id yet; word id -1) or
    ``MISS_SCORE``; the state id is -1 on the n-gram path and the vocabulary id -1 on the
    cache path. Without a language model the score is 0.
    """
    path = params.score_path
    if path == SP_NONE:
        return FOUND, 0.0, -1, -1, WORD_EMPTY
    wid = WORD_EMPTY
    if has_word:
        wid = lookup_word(model.cache.word_keys, model.cache.word_vals, h)
    if path == SP_NGRAM:  # every word of the model has an id; other strings are <unk>
        if wid < 0:
            wid = WORD_UNKNOWN
        score, vocab = ngram_word_score(model.ngrams, params, tn_i, parent, wid, eos, ctx)
        return FOUND, score, -1, vocab, wid
    # SP_CACHE
    if wid < 0:
        return MISS_WORD, 0.0, -1, -1, -1
    score, state = lookup_lm(model.cache, tn_i[parent, N_LMSTATE], wid, eos)
    if state < 0:
        return MISS_SCORE, 0.0, -1, -1, wid
    return FOUND, score, state, -1, wid


@jit
def oov_offset_bound(params, wid):
    """The largest unknown-word offset word ``wid`` can carry (-1: a string without an id),
    from how ``KernelTables`` numbers words: the empty and unknown ids are out of the
    vocabulary, unigrams are in it, the model's other words are out of it when a unigram list
    was given."""
    unk = params.unk_offset
    if wid < 0:
        return unk if params.have_unigrams else max(unk, 0.0)
    if wid < FIRST_UNIGRAM:
        return unk
    if wid >= FIRST_UNIGRAM + params.n_unigrams and params.have_unigrams:
        return unk
    return 0.0


@jit
def word_score_bound(params, wid):
    """Upper bound of a word's LM score on the cache path (``params.can_bound``): KenLM's
    log10 probabilities are <= 0 (0.5 of margin is allowed)."""
    return params.alpha_ln10 * (0.5 + oov_offset_bound(params, wid)) + params.beta


@jit(_nrt=False)
def is_hotword(hotwords, h):
    """Whether the word with hash ``h`` is a hotword."""
    return hotwords.word_keys.size > 1 and table_find(hotwords.word_keys, h) >= 0


@jit(_nrt=False)
def partial_score(model, params, plen, phash):
    """Score of the unfinished word (``plen`` characters, hash ``phash``); NaN when a custom
    model's score is not cached yet (``PARTIAL_QUERY``)."""
    if plen == 0:
        return 0.0
    hw = model.hotwords
    if hw.pre_keys.size > 1:
        slot = table_find(hw.pre_keys, phash)
        if slot >= 0:
            return params.hw_weight * plen / hw.pre_minlen[slot]
    mode = params.partial_mode
    if mode == PARTIAL_UNIGRAMS:
        oov = 1.0
        if params.have_unigrams and table_find(model.cache.prefixes, phash) >= 0:
            oov = 0.0
        s = params.unk_offset * oov
        if plen > AVG_TOKEN_LEN:
            s = s * plen / AVG_TOKEN_LEN
        return s
    if mode == PARTIAL_QUERY:
        slot = table_find(model.cache.part_keys, phash)
        if slot < 0:
            return np.nan
        return model.cache.part_vals[slot]
    return 0.0


@jit(_nrt=False)
def find_child(text, parent, h):
    """Text node ``parent`` + word ``h`` if it exists, else -1."""
    key = pair_key(parent, h)
    slot = table_find(text.table_keys, key, True)
    if slot >= 0:
        node = text.table_vals[slot]
        if text.i[node, N_PARENT] == parent and text.word[node] == h:
            return node
    return -1


@jit(_nrt=False)
def child_text(model, params, text, io, parent, h, ctx):
    """``(node, word id)`` for text ``parent`` + word ``h``; the node is created on first use
    (``io[IO_NTEXT]`` counts the nodes).

    ``node`` is -1 while the word id or its LM score is not in the tables yet (``word id``
    -1 when the word itself is unknown); the caller decides whether to query it.
    """
    tn_i = text.i
    key = pair_key(parent, h)
    slot = table_slot_for_insert(text.table_keys, key, True)
    if text.table_keys[slot] == key:
        node = text.table_vals[slot]
        if tn_i[node, N_PARENT] == parent and text.word[node] == h:
            return node, -2
        slot = -1  # two pairs share a 64-bit key (practically never): keep the node private
    found, score, state, vocab, wid = word_score(model, params, tn_i, parent, h, True, 0, ctx)
    if found != FOUND:
        return -1, wid
    is_hw = 1 if is_hotword(model.hotwords, h) else 0
    node = io[IO_NTEXT]
    io[IO_NTEXT] = node + 1
    tn_i[node, N_PARENT] = parent
    tn_i[node, N_LMSTATE] = state
    tn_i[node, N_VOCAB] = vocab
    tn_i[node, N_HW] = tn_i[parent, N_HW] + is_hw
    tn_i[node, N_NWORDS] = tn_i[parent, N_NWORDS] + 1
    text.word[node] = h
    text.lm[node] = text.lm[parent] + score + params.hw_weight * is_hw
    # history key: hash of the last n_hist words (pyctcdecode's prune_history)
    hh = FNV_OFFSET
    cur = node
    for _ in range(params.n_hist):
        if cur <= 0:
            break
        hh = fnv_extend(hh ^ text.word[cur], 0x2F)
        cur = tn_i[cur, N_PARENT]
    text.hist[node] = hh
    if slot >= 0:
        text.table_vals[slot] = node
        text.table_keys[slot] = key
    return node, wid


@jit
def rebuild_text_table(tn_i, tn_word, n_used, tt_keys, tt_vals):
    """Re-insert text nodes ``1..n_used-1`` into an empty (parent, word) table."""
    for node in range(1, n_used):
        key = pair_key(tn_i[node, N_PARENT], tn_word[node])
        slot = table_slot_for_insert(tt_keys, key, True)
        if tt_keys[slot] == 0:
            tt_vals[slot] = node
            tt_keys[slot] = key
