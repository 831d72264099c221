#!/usr/bin/env python3
"""Turn a text corpus into a KenLM word language model for fastctc.

Steps (each one a function, so the pure-Python parts can be tested on their own):

1. ``normalise_corpus``: lowercase, strip accents, map typographic apostrophes, replace every
   character outside the label set by a space, drop apostrophes at word edges, one sentence a
   line.
2. ``run_lmplz``: KenLM's ``lmplz`` estimates a modified Kneser-Ney ARPA model.
3. ``run_build_binary``: KenLM's ``build_binary`` turns it into a compact binary (trie,
   optionally quantised).
4. ``unigrams_from_arpa``: the model's vocabulary, one word a line (the ``unigrams`` list that
   ``fastctc.build_ctcdecoder`` and pyctcdecode take), read by ``fastctc.lm.ngram.arpa_unigrams``.
5. A JSON manifest next to the model records the corpus checksum, the options and the sizes.

``lmplz`` and ``build_binary`` are taken from ``--kenlm-bin``, then ``build/kenlm/bin``, then the
PATH; ``--build-kenlm`` compiles them first with ``lm/build_kenlm.sh`` when none is found.

Example (the model bundled with fastctc)::

    python lm/build_lm.py ../shared/data/corpus_train.txt.gz --out-dir fastctc/data \
        --name lm_en_3gram --order 3 --prune 0 1 1 --quantize 8 --build-kenlm
"""

from __future__ import annotations

import argparse
import collections
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if __name__ == "__main__" and str(ROOT) not in sys.path:  # run from a checkout
    sys.path.insert(0, str(ROOT))

from fastctc.lm.ngram import arpa_unigrams, check_arpa_header  # noqa: E402 - after ROOT

#: The character label set of fastctc's bundled English model (blank excluded): space, apostrophe
#: and a-z, the usual labels of English character CTC models.
ENGLISH_CHARS = " '" + "abcdefghijklmnopqrstuvwxyz"

_APOSTROPHES = {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"}
_BLANK_LABELS = {"", "<pad>", "[pad]", "<blank>", "<s>", "</s>", "<unk>", "[unk]"}


def alphabet_from_labels(labels: Iterable[str]) -> str:
    """Characters a normalised corpus may keep, from a CTC label list.

    Single-character labels are kept (``|`` counts as the space); blank and special labels
    (``""``, ``<pad>``, ``<unk>``, ...) are ignored. Multi-character labels (subword pieces)
    raise ``ValueError``: a word model for a subword vocabulary is built from words made of
    the pieces' characters; pass those characters with ``--chars`` instead.
    """
    chars: set[str] = set()
    for i, lab in enumerate(labels):
        if not isinstance(lab, str):
            raise TypeError(f"labels[{i}] must be a str; got {type(lab).__name__}.")
        if lab.lower() in _BLANK_LABELS:
            continue
        if lab == "|":
            chars.add(" ")
        elif len(lab) == 1:
            chars.add(lab.lower())
        else:
            raise ValueError(
                f"labels[{i}] = {lab!r} is not a single character; pass the characters of "
                "the vocabulary with --chars for subword label sets."
            )
    chars.add(" ")
    return "".join(sorted(chars))


def normalise_line(line: str, alphabet: str = ENGLISH_CHARS) -> str:
    """Normalise one line of text to the characters of ``alphabet``.

    Lowercases, removes accents (``é`` -> ``e``), maps typographic apostrophes to ``'``,
    replaces any other character outside ``alphabet`` by a space, strips apostrophes at the
    start and end of words and collapses runs of spaces.

    Examples
    --------
    >>> normalise_line("“Don’t!” said Élise -- twice.")
    "don't said elise twice"
    """
    allowed = set(alphabet)
    text = unicodedata.normalize("NFKD", line.lower())
    out = []
    for ch in text:
        if unicodedata.combining(ch):
            continue
        ch = _APOSTROPHES.get(ch, ch)
        out.append(ch if ch in allowed and ch != "\n" else " ")
    words = []
    for word in "".join(out).split():
        word = word.strip("'") if "'" in allowed else word
        if word:
            words.append(word)
    return " ".join(words)


def _open_text(path: Path | str) -> Iterator[str]:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:  # type: ignore[operator]
        yield from fh


def normalise_corpus(
    src: Path | str, dst: Path | str, alphabet: str = ENGLISH_CHARS, min_words: int = 1
) -> dict[str, int]:
    """Normalise ``src`` (plain or ``.gz`` text) into ``dst``, one sentence a line.

    Lines with fewer than ``min_words`` words after normalisation are dropped.

    Returns
    -------
    dict
        ``lines_in``, ``lines_out``, ``words`` and ``vocabulary`` (distinct words).
    """
    lines_in = lines_out = n_words = 0
    vocab: set[str] = set()
    with open(dst, "w", encoding="utf-8") as out:
        for line in _open_text(src):
            lines_in += 1
            norm = normalise_line(line, alphabet)
            words = norm.split()
            if len(words) < min_words:
                continue
            out.write(norm + "\n")
            lines_out += 1
            n_words += len(words)
            vocab.update(words)
    return {
        "lines_in": lines_in,
        "lines_out": lines_out,
        "words": n_words,
        "vocabulary": len(vocab),
    }


def word_counts(path: Path | str) -> collections.Counter[str]:
    """Word frequencies of a normalised corpus."""
    counts: collections.Counter[str] = collections.Counter()
    for line in _open_text(path):
        counts.update(line.split())
    return counts


def unigrams_from_arpa(arpa: Path | str) -> list[str]:
    """Words of an ARPA model's 1-gram section in file order, without ``<s>``, ``</s>`` and
    ``<unk>`` (:func:`fastctc.lm.ngram.arpa_unigrams`, which raises ``ValueError`` for a file
    that is not an ARPA model)."""
    return [w for w in arpa_unigrams(arpa) if w not in ("<s>", "</s>", "<unk>")]


def write_unigrams(words: Iterable[str], path: Path | str) -> int:
    """Write one word a line; returns the count."""
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for w in words:
            fh.write(w + "\n")
            n += 1
    return n


def find_tool(name: str, kenlm_bin: Path | str | None = None) -> str | None:
    """Path of a KenLM tool: ``kenlm_bin``, then ``build/kenlm/bin``, then the PATH."""
    for d in (kenlm_bin, ROOT / "build" / "kenlm" / "bin"):
        if d is not None and (Path(d) / name).is_file() and os.access(Path(d) / name, os.X_OK):
            return str(Path(d) / name)
    return shutil.which(name)


def build_kenlm(prefix: Path | str = ROOT / "build" / "kenlm") -> Path:
    """Compile ``lmplz`` and ``build_binary`` with ``lm/build_kenlm.sh``; returns the bin dir."""
    subprocess.run(["bash", str(HERE / "build_kenlm.sh"), str(prefix)], check=True)
    return Path(prefix) / "bin"


def lmplz_command(
    lmplz: str, order: int, prune: list[int] | None, memory: str, tmpdir: str
) -> list[str]:
    """The ``lmplz`` command line (corpus on stdin, ARPA on stdout)."""
    cmd = [lmplz, "-o", str(order), "-S", memory, "-T", tmpdir, "--discount_fallback"]
    if prune:
        if len(prune) > order:
            raise ValueError(f"--prune takes at most {order} thresholds; got {prune}.")
        cmd += ["--prune", *map(str, prune)]
    return cmd


def run_lmplz(
    corpus: Path | str,
    arpa: Path | str,
    order: int = 3,
    prune: list[int] | None = None,
    lmplz: str = "lmplz",
    memory: str = "25%",
) -> None:
    """Estimate an ARPA model from a normalised corpus."""
    with tempfile.TemporaryDirectory() as tmp, open(corpus, "rb") as fin, open(arpa, "wb") as fout:
        subprocess.run(
            lmplz_command(lmplz, order, prune, memory, tmp), stdin=fin, stdout=fout, check=True
        )


def build_binary_command(
    build_binary: str, arpa: str, binary: str, quantize: int | None, data_structure: str
) -> list[str]:
    """The ``build_binary`` command line."""
    cmd = [build_binary]
    if quantize:
        if data_structure != "trie":
            raise ValueError("quantisation (--quantize) needs the trie data structure.")
        cmd += ["-q", str(quantize), "-b", str(quantize)]
    cmd += [data_structure, arpa, binary]
    return cmd


def run_build_binary(
    arpa: Path | str,
    binary: Path | str,
    build_binary: str = "build_binary",
    quantize: int | None = None,
    data_structure: str = "trie",
) -> None:
    """Convert an ARPA model into a KenLM binary."""
    subprocess.run(
        build_binary_command(build_binary, str(arpa), str(binary), quantize, data_structure),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_model(
    corpus: Path | str,
    out_dir: Path | str,
    name: str,
    order: int = 3,
    prune: list[int] | None = None,
    quantize: int | None = None,
    alphabet: str = ENGLISH_CHARS,
    keep_arpa: bool = False,
    kenlm_bin: Path | str | None = None,
    build_tools: bool = False,
    memory: str = "25%",
) -> dict[str, object]:
    """Run the whole recipe; returns the manifest (also written to ``<name>.json``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lmplz = find_tool("lmplz", kenlm_bin)
    build_bin = find_tool("build_binary", kenlm_bin)
    if (lmplz is None or build_bin is None) and build_tools:
        kenlm_bin = build_kenlm()
        lmplz = find_tool("lmplz", kenlm_bin)
        build_bin = find_tool("build_binary", kenlm_bin)
    if lmplz is None or build_bin is None:
        raise FileNotFoundError(
            "KenLM's lmplz/build_binary not found on the PATH, in build/kenlm/bin or "
            "--kenlm-bin; build them with lm/build_kenlm.sh or pass --build-kenlm."
        )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "corpus.txt"
        stats = normalise_corpus(corpus, text, alphabet)
        if stats["lines_out"] == 0:
            raise ValueError(f"{corpus}: no text left after normalisation to {alphabet!r}.")
        arpa = (out / f"{name}.arpa") if keep_arpa else Path(tmp) / f"{name}.arpa"
        run_lmplz(text, arpa, order, prune, lmplz, memory)
        binary = out / f"{name}.bin"
        run_build_binary(arpa, binary, build_bin, quantize)
        n_uni = write_unigrams(unigrams_from_arpa(arpa), out / f"{name}.unigrams.txt")
        counts = {str(n): c for n, c in check_arpa_header(arpa).items()}
    manifest: dict[str, object] = {
        "model": binary.name,
        "unigrams": f"{name}.unigrams.txt",
        "corpus": Path(corpus).name,
        "corpus_sha256": sha256(corpus),
        "alphabet": alphabet,
        "normalisation": stats,
        "order": order,
        "prune": prune or [],
        "quantize_bits": quantize,
        "ngram_counts": counts,
        "unigram_count": n_uni,
        "binary_bytes": binary.stat().st_size,
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    with open(out / f"{name}.json", "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2)
        fh.write("\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("corpus", help="text corpus (.txt or .txt.gz), any layout")
    p.add_argument("--out-dir", default="build/lm", help="where the model goes")
    p.add_argument("--name", default="lm", help="file stem of the outputs")
    p.add_argument("--order", type=int, default=3, help="n-gram order (default 3)")
    p.add_argument(
        "--prune",
        type=int,
        nargs="*",
        default=None,
        help="lmplz --prune thresholds per order, e.g. 0 1 1",
    )
    p.add_argument(
        "--quantize", type=int, default=None, help="bits for build_binary -q/-b (e.g. 8); trie only"
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--labels", help="CTC labels (JSON list or one a line): keep their chars")
    src.add_argument("--chars", help="characters to keep (space is always kept)")
    p.add_argument("--keep-arpa", action="store_true", help="keep the ARPA file")
    p.add_argument("--kenlm-bin", help="folder holding lmplz and build_binary")
    p.add_argument(
        "--build-kenlm",
        action="store_true",
        help="compile lmplz/build_binary with lm/build_kenlm.sh when missing",
    )
    p.add_argument("--memory", default="25%", help="lmplz -S memory budget (default 25%%)")
    args = p.parse_args(argv)
    alphabet = ENGLISH_CHARS
    if args.labels:
        alphabet = alphabet_from_labels(_read_labels(args.labels))
    elif args.chars:
        alphabet = "".join(sorted(set(args.chars.lower()) | {" "}))
    manifest = build_model(
        args.corpus,
        args.out_dir,
        args.name,
        args.order,
        args.prune,
        args.quantize,
        alphabet,
        args.keep_arpa,
        args.kenlm_bin,
        args.build_kenlm,
        args.memory,
    )
    json.dump(manifest, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _read_labels(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if path.endswith(".json"):
        data = json.loads(text)
        if isinstance(data, dict):
            return [k for k, _ in sorted(data.items(), key=lambda kv: kv[1])]
        return list(data)
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


if __name__ == "__main__":
    sys.exit(main())
