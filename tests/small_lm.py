"""The test suite's own small word 4-gram model and the text it comes from.

``tests/data/small_4gram.arpa.gz`` (KenLM ARPA, gzipped), ``small_4gram.bin`` (KenLM
trie, unquantised), ``small_4gram.unigrams.txt`` and the manifest ``small_4gram.json`` were
built with the package's recipe (``lm/build_lm.py``, 4-gram, ``--prune 0 0 1 1``) from
:func:`corpus_lines`: 4,000 English-like sentences drawn from a small seeded grammar (359
words, Zipf-weighted, with possessives and contractions). :func:`dev_sentences` draws
held-out sentences from the same grammar with another seed; none of them is in the training
text. Rebuild the files with::

    python -m tests.small_lm            # needs lmplz/build_binary: lm/build_kenlm.sh

``tests/test_lm_recipe.py`` checks that the manifest's corpus checksum is that of
:func:`corpus_lines` (always) and that the recipe rebuilds the same ARPA file (where KenLM's
tools are built).
"""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
NAME = "small_4gram"
ARPA = DATA / f"{NAME}.arpa.gz"
BINARY = DATA / f"{NAME}.bin"
UNIGRAMS = DATA / f"{NAME}.unigrams.txt"
MANIFEST = DATA / f"{NAME}.json"

#: Recipe options of the committed model.
ORDER = 4
PRUNE = [0, 0, 1, 1]
CORPUS_SEED = 2027
CORPUS_LINES = 4000
DEV_SEED = 99

# ------------------------------------------------------------------------- word lists
# Each list runs from frequent to rare: draws are Zipf-weighted by rank.


def _words(text: str) -> list[str]:
    """Entries separated by commas (an entry may have several words)."""
    return [w.strip() for w in text.split(",")]


NAMES = _words(
    "anna, tom, the captain, mister price, old mary, doctor lee, jack, the baker, miss ward, "
    "uncle ben, the stranger, lucy, the widow, peter, the old sailor, her brother, my aunt, "
    "the mayor, nobody, sam"
)
NOUNS = _words(
    "house, door, letter, road, garden, window, ship, horse, river, dog, table, book, lamp, "
    "hat, box, field, bridge, coat, key, bell, boat, train, cat, tree, town, shop, wall, "
    "chair, cup, hill, map, lantern, harbour, clock, ring, basket, kettle, candle, piano, "
    "carriage, fence, stove, bottle, ladder, parcel, violin, umbrella, mirror, blanket, "
    "island, village, orchard, chimney, cottage, meadow, compass, anchor, barrel, saddle, "
    "teapot, drawer, pocket, ribbon, shovel, wagon, cellar, feather, whistle, jewel, "
    "painting, telescope, lighthouse, wardrobe, postcard, cupboard"
)
PLURALS = _words(
    "letters, horses, books, apples, stones, birds, flowers, boxes, shoes, keys, papers, "
    "children, friends, ships, trees, candles, cakes, coins, gloves, jewels, paintings, "
    "sheep, biscuits, oranges, roses, spoons, buttons, parcels, lanterns, pebbles"
)
ADJECTIVES = _words(
    "old, little, red, big, new, small, quiet, dark, green, cold, long, heavy, broken, "
    "bright, empty, strange, warm, yellow, wooden, narrow, tired, silver, golden, muddy, "
    "crooked, shabby, noisy, splendid, dusty, gentle, rusty, frozen, hollow, curious, "
    "peculiar, enormous, fragile, velvet, ancient, crimson"
)
#: (past, base) forms of transitive verbs.
VERBS_T = [
    tuple(pair.split("/"))
    for pair in _words(
        "saw/see, found/find, took/take, opened/open, closed/close, liked/like, "
        "carried/carry, painted/paint, bought/buy, sold/sell, lost/lose, kept/keep, "
        "washed/wash, mended/mend, hid/hide, borrowed/borrow, noticed/notice, dropped/drop, "
        "polished/polish, admired/admire, forgot/forget, wrapped/wrap, counted/count, "
        "guarded/guard, inspected/inspect"
    )
]
VERBS_I = _words(
    "slept, waited, laughed, smiled, walked, ran, sang, stayed, worked, listened, shouted, "
    "danced, wandered, whispered, trembled, hesitated, vanished, grumbled"
)
PREPOSITIONS = _words(
    "in, on, by, near, under, behind, beside, across, over, inside, against, beyond"
)
ADVERBS = _words(
    "slowly, quickly, again, today, yesterday, quietly, often, twice, happily, at once, "
    "all day, at last, by the window, for a while, without a word, after dinner, "
    "in the morning, before noon"
)
OPENERS = _words(
    "then, later, well, of course, in the end, after that, meanwhile, oh, suddenly, luckily, "
    "perhaps, that evening"
)
CONJUNCTIONS = _words("and, but, because, so, while, although, and then, until")
#: (subject, possessive) pronouns.
PRONOUNS = [
    tuple(pair.split("/")) for pair in _words("he/his, she/her, they/their, we/our, i/my, you/your")
]
THINKS = _words("said, thought, knew, felt, believed, wrote, heard, supposed")


def _pick(r: random.Random, items: list, skew: float = 1.0):
    """A Zipf-weighted draw: item ``k`` has weight ``1 / (k + 1) ** skew``."""
    return r.choices(items, weights=[1.0 / (k + 1) ** skew for k in range(len(items))])[0]


def _noun_phrase(r: random.Random, depth: int = 0) -> str:
    u = r.random()
    if u < 0.12:
        return _pick(r, NAMES)
    if u < 0.22:
        return _pick(r, PRONOUNS)[1] + " " + _pick(r, NOUNS)
    if u < 0.30:
        return _pick(r, NAMES).split()[-1] + "'s " + _pick(r, NOUNS)
    det = _pick(r, ["the", "a", "that", "this", "every", "one", "some"], 1.3)
    adjs = [_pick(r, ADJECTIVES, 0.9) for _ in range(r.choice([0, 0, 0, 1, 1, 2]))]
    if det in ("some", "the") and r.random() < 0.35:
        noun = _pick(r, PLURALS)
    else:
        noun = _pick(r, NOUNS, 0.9)
    if det == "a" and (adjs[0] if adjs else noun)[0] in "aeiou":
        det = "an"
    phrase = " ".join([det, *adjs, noun])
    if depth == 0 and r.random() < 0.15:
        phrase += " of " + _noun_phrase(r, depth + 1)
    return phrase


def _subject(r: random.Random) -> tuple[str, bool]:
    """A subject and whether it is a pronoun (for contractions)."""
    if r.random() < 0.4:
        return _pick(r, PRONOUNS)[0], True
    return (_pick(r, NAMES) if r.random() < 0.4 else _noun_phrase(r, 1)), False


def _clause(r: random.Random, depth: int = 0) -> str:
    subj, pronoun = _subject(r)
    u = r.random()
    if u < 0.42:
        past, _ = _pick(r, VERBS_T, 0.8)
        vp = f"{past} {_noun_phrase(r)}"
        if r.random() < 0.3:
            vp += f" {_pick(r, PREPOSITIONS)} {_noun_phrase(r, 1)}"
    elif u < 0.60:
        vp = _pick(r, VERBS_I, 0.8)
        if r.random() < 0.5:
            vp += f" {_pick(r, PREPOSITIONS)} {_noun_phrase(r, 1)}"
    elif u < 0.72:
        _, base = _pick(r, VERBS_T, 0.8)
        neg = _pick(r, ["didn't", "couldn't", "wouldn't", "did not", "won't", "can't"])
        vp = f"{neg} {base} {_noun_phrase(r)}"
    elif u < 0.82:
        be = "were" if subj in ("they", "we", "you") else "was"
        vp = f"{be} {_pick(r, ['very', 'rather', 'not', 'so', 'quite'])} {_pick(r, ADJECTIVES)}"
    elif u < 0.90 and depth == 0:
        vp = f"{_pick(r, THINKS)} that {_clause(r, depth + 1)}"
    else:
        it = _pick(r, ["it's", "that's", "there's", "here's"])
        return f"{it} {_noun_phrase(r)} {_pick(r, PREPOSITIONS)} {_noun_phrase(r, 1)}"
    if pronoun and subj in ("i", "you", "we", "they") and vp.startswith("won't"):
        subj = {"i": "i'll", "you": "you'll", "we": "we'll", "they": "they'll"}[subj]
        vp = vp.replace("won't ", "never ", 1)
    if r.random() < 0.3:
        vp += " " + _pick(r, ADVERBS)
    return f"{subj} {vp}"


def sentence(r: random.Random) -> str:
    """One sentence of the grammar: lowercase words, apostrophes, single spaces."""
    s = _clause(r)
    if r.random() < 0.3:
        s += f" {_pick(r, CONJUNCTIONS)} {_clause(r, 1)}"
    if r.random() < 0.15:
        s = f"{_pick(r, OPENERS)} {s}"
    return s


@cache
def corpus_lines() -> tuple[str, ...]:
    """The training text of the small model, one sentence a line."""
    r = random.Random(CORPUS_SEED)
    return tuple(sentence(r) for _ in range(CORPUS_LINES))


@cache
def dev_sentences(n: int = 200) -> tuple[str, ...]:
    """``n`` held-out sentences (4 to 16 words, none in the training text, no repeats)."""
    seen = set(corpus_lines())
    r = random.Random(DEV_SEED)
    out: list[str] = []
    while len(out) < n:
        s = sentence(r)
        if 4 <= len(s.split()) <= 16 and s not in seen:
            seen.add(s)
            out.append(s)
    return tuple(out)


def corpus_text() -> str:
    return "".join(line + "\n" for line in corpus_lines())


def unigrams() -> list[str]:
    """The model's vocabulary (without <s>, </s>, <unk>), one word a line in the file."""
    return UNIGRAMS.read_text(encoding="utf-8").split()


def manifest() -> dict:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def rebuild(out_dir: Path, build_lm, kenlm_bin: str | None = None) -> dict:
    """Run the recipe (``build_lm`` is the ``lm/build_lm.py`` module) on the corpus into
    ``out_dir``; returns its manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = out_dir / f"{NAME}.corpus.txt"
    corpus.write_text(corpus_text(), encoding="utf-8")
    result = build_lm.build_model(
        corpus,
        out_dir,
        NAME,
        order=ORDER,
        prune=PRUNE,
        quantize=None,
        keep_arpa=True,
        kenlm_bin=kenlm_bin,
        memory="64M",
    )
    corpus.unlink()
    return result


def main() -> None:  # pragma: no cover - run by hand to refresh tests/data
    import gzip
    import importlib.util
    import os
    import sys

    root = DATA.parents[1]
    spec = importlib.util.spec_from_file_location("build_lm", root / "lm" / "build_lm.py")
    build_lm = importlib.util.module_from_spec(spec)
    sys.modules["build_lm"] = build_lm
    spec.loader.exec_module(build_lm)
    result = rebuild(DATA, build_lm, os.environ.get("KENLM_BIN"))
    plain = DATA / f"{NAME}.arpa"
    with open(ARPA, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
        fh.write(plain.read_bytes())
    plain.unlink()
    result["build_seconds"] = 0.0  # keep the manifest stable between rebuilds
    MANIFEST.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
