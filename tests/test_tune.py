"""``fastctc.tune`` and ``fastctc tune``: the grid against fresh decoders, the best setting,
restored parameters, the parameter file, ``decode --params``, and the input checks.

The dev set is 16 simulated utterances of the small model's held-out sentences
(:mod:`tests.simulate`, :mod:`tests.small_lm`).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

import fastctc
from fastctc import cli
from fastctc.tune import GridPoint, TuneResult, _key, load_params, tune
from tests import small_lm
from tests.simulate import CHAR_LABELS, simulate_char

pytestmark = pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT") == "1",
    reason="too slow with NUMBA_DISABLE_JIT=1 (every test decodes with the LM)",
)

BEAM = 16
ALPHAS = [0.2, 0.6]
BETAS = [0.0, 1.5]


@pytest.fixture(scope="module")
def dev():
    sentences = list(small_lm.dev_sentences(16))
    return [simulate_char(s, i) for i, s in enumerate(sentences)], sentences


@pytest.fixture(scope="module")
def unigrams():
    return small_lm.UNIGRAMS.read_text(encoding="utf-8").split()


def build(unigrams, **params):
    return fastctc.build_ctcdecoder(
        CHAR_LABELS, kenlm_model_path=str(small_lm.ARPA), unigrams=unigrams, **params
    )


@pytest.fixture(scope="module")
def result(dev, unigrams):
    decoder = build(unigrams, alpha=0.45, beta=0.8)
    res = tune(decoder, *dev, ALPHAS, BETAS, beam_width=BEAM, num_threads=2)
    return res, decoder


def test_grid_equals_fresh_decoders(result, dev, unigrams):
    res, _ = result
    lps, refs = dev
    assert [(p.alpha, p.beta) for p in res.grid] == [(a, b) for a in ALPHAS for b in BETAS]
    for p in res.grid:
        hyps = build(unigrams, alpha=p.alpha, beta=p.beta).decode_batch(
            None, lps, beam_width=BEAM, num_threads=1
        )
        assert p.wer == fastctc.wer(refs, hyps)
        assert p.cer == fastctc.cer(refs, hyps)
        assert p.seconds > 0
    assert len({p.wer for p in res.grid}) > 1  # the grid does matter on this set


def test_best_is_the_minimum_and_params_restored(result):
    res, decoder = result
    key = min((p.wer, p.cer, abs(p.alpha)) for p in res.grid)
    assert (res.best.wer, res.best.cer, abs(res.best.alpha)) == key
    assert (res.alpha, res.beta) == (res.best.alpha, res.best.beta)
    assert (decoder.language_model.alpha, decoder.language_model.beta) == (0.45, 0.8)
    assert res.beam_width == BEAM


def test_ties_go_to_lower_cer_then_smaller_alpha():
    grid = [
        GridPoint(0.9, 1.0, 0.1, 0.05, 1.0),
        GridPoint(-0.5, 1.0, 0.1, 0.04, 1.0),
        GridPoint(0.3, 1.0, 0.1, 0.04, 1.0),
        GridPoint(0.1, 1.0, 0.2, 0.01, 1.0),
    ]
    assert min(grid, key=_key) == grid[2]


def test_params_restored_after_an_error(dev, unigrams):
    decoder = build(unigrams, alpha=0.45, beta=0.8)
    lps, refs = dev
    with pytest.raises(ValueError):
        tune(decoder, [lps[0], np.zeros((3, 2))], refs[:2], [0.1], [0.2], beam_width=4)
    assert (decoder.language_model.alpha, decoder.language_model.beta) == (0.45, 0.8)


def test_save_and_load(result, tmp_path, unigrams):
    res, _ = result
    path = tmp_path / "params.json"
    res.save(path)
    data = json.loads(path.read_text())
    assert set(data) == {"alpha", "beta", "beam_width", "wer", "cer", "grid"}
    assert (data["wer"], data["cer"], data["beam_width"]) == (res.best.wer, res.best.cer, BEAM)
    assert [GridPoint(**g) for g in data["grid"]] == res.grid
    params = load_params(path)
    assert params == {"alpha": res.alpha, "beta": res.beta}
    dec = build(unigrams, **params)
    assert (dec.language_model.alpha, dec.language_model.beta) == (res.alpha, res.beta)
    assert "*" in res.table().splitlines()[1 + res.grid.index(res.best)]


@pytest.mark.parametrize(
    "content, match",
    [("[1, 2]", "JSON object"), ('{"alpha": 1}', "beta must be a finite number"), ("{", "JSON")],
)
def test_load_params_errors(tmp_path, content, match):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_params(path)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(alphas=[]), ValueError, "alphas must hold at least one value"),
        (dict(betas=[1.0, math.inf]), ValueError, r"betas\[1\] must be finite; got inf"),
        (dict(alphas=[math.nan]), ValueError, r"alphas\[0\] must be finite; got nan"),
        (dict(alphas="0.5"), TypeError, "alphas must be a sequence of numbers; got str"),
        (dict(betas=[1, "x"]), TypeError, r"betas\[1\] must be a number; got str"),
        (dict(references=["a", 3]), TypeError, r"references\[1\] must be a str; got int"),
        (dict(references=["a"]), ValueError, "same length; got 2 utterances and 1 references"),
        (dict(log_probs=[], references=[]), ValueError, "log_probs is empty"),
        (dict(metric="ser"), ValueError, "metric must be 'wer' or 'cer'; got 'ser'"),
    ],
)
def test_input_errors(dev, unigrams, kwargs, err, match):
    lps, refs = dev
    args = dict(log_probs=lps[:2], references=refs[:2], alphas=[0.5], betas=[1.0])
    args.update(kwargs)
    with pytest.raises(err, match=match):
        tune(build(unigrams), **args, beam_width=4)


def test_decoder_without_lm():
    with pytest.raises(ValueError, match="no language model"):
        tune(fastctc.build_ctcdecoder(CHAR_LABELS), [np.zeros((2, 29))], ["a"], [0.5], [1.0])


# ---------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def files(tmp_path_factory, dev):
    lps, refs = dev
    d = tmp_path_factory.mktemp("tune")
    np.savez(d / "dev.npz", **{f"u{i:02d}": lp for i, lp in enumerate(lps)})
    (d / "labels.json").write_text(json.dumps(CHAR_LABELS))
    (d / "refs.tsv").write_text("".join(f"u{i:02d}\t{r}\n" for i, r in enumerate(refs)))
    common = [str(d / "dev.npz"), "--labels", str(d / "labels.json")]
    common += ["--lm", str(small_lm.ARPA), "--unigrams", str(small_lm.UNIGRAMS)]
    return d, common


def test_cli_tune_writes_the_best_setting(files, result, capsys):
    d, common = files
    res, _ = result
    out = d / "params.json"
    args = ["tune", *common, "--refs", str(d / "refs.tsv"), "--alphas", "0.2,0.6"]
    args += ["--betas", "0,1.5", "--beam-width", str(BEAM), "--threads", "2", "-o", str(out)]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert f"best: alpha {res.alpha:g} beta {res.beta:g}" in printed
    assert "WER" in printed.splitlines()[0]
    assert load_params(out) == {"alpha": res.alpha, "beta": res.beta}
    assert json.loads(out.read_text())["wer"] == res.best.wer


def test_cli_decode_params_equals_explicit_values(files, capsys):
    d, common = files
    params = d / "given.json"
    params.write_text(json.dumps({"alpha": 0.2, "beta": 1.5}))
    outs = {}
    for name, extra in [
        ("params", ["--params", str(params)]),
        ("explicit", ["--alpha", "0.2", "--beta", "1.5"]),
        ("wins", ["--params", str(params), "--alpha", "0.9"]),
        ("explicit_wins", ["--alpha", "0.9", "--beta", "1.5"]),
    ]:
        out = d / f"{name}.jsonl"
        argv = ["decode", *common, "--beam-width", str(BEAM), "-q", "-o", str(out), *extra]
        assert cli.main(argv) == 0
        outs[name] = out.read_text()
    assert outs["params"] == outs["explicit"]
    assert outs["wins"] == outs["explicit_wins"]
    assert outs["wins"] != outs["params"]


def test_cli_errors(files, tmp_path, capsys):
    d, common = files
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert cli.main(["decode", *common, "--params", str(bad)]) == cli.EXIT_USAGE
    assert "--params" in capsys.readouterr().err
    (tmp_path / "none.tsv").write_text("other\tsome text\n")
    argv = ["tune", *common, "--refs", str(tmp_path / "none.tsv")]
    assert cli.main(argv) == cli.EXIT_USAGE
    assert "no input has a reference" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["tune", *common, "--refs", str(d / "refs.tsv"), "--alphas", ","])
    assert "expected numbers" in capsys.readouterr().err


def test_result_is_a_namedtuple():
    p = GridPoint(0.5, 1.0, 0.1, 0.05, 2.0)
    res = TuneResult([p], p, 8)
    assert res.to_dict()["grid"] == [p._asdict()]


# ---------------------------------------------------------------- the lexicon mode


def test_lexicon_grid_equals_fresh_decoders(dev, unigrams):
    lps, refs = dev
    decoder = build(unigrams, lexicon=True, alpha=0.45, beta=0.8)
    res = tune(
        decoder,
        lps,
        refs,
        [0.6],
        [1.5],
        beam_width=BEAM,
        unk_scores=[-math.inf, -4.0],
        sil_scores=[0.0],
        log_adds=[False, True],
    )
    assert [(p.unk_score, p.log_add) for p in res.grid] == [
        (-math.inf, False),
        (-math.inf, True),
        (-4.0, False),
        (-4.0, True),
    ]
    for p in res.grid:
        fresh = build(unigrams, lexicon=True, **p.params())
        hyps = fresh.decode_batch(None, lps, beam_width=BEAM)
        assert p.wer == fastctc.metrics.wer(refs, hyps)
    assert decoder.lexicon_options == fastctc.lm.lexicon.LexiconOptions()
    assert (decoder.language_model.alpha, decoder.language_model.beta) == (0.45, 0.8)


def test_lexicon_params_file_round_trip(tmp_path, dev, unigrams):
    lps, refs = dev
    decoder = build(unigrams, lexicon=True)
    res = tune(
        decoder,
        lps[:4],
        refs[:4],
        [0.5],
        [1.0],
        beam_width=BEAM,
        log_adds=[True],
        unk_scores=[-math.inf],
    )
    res.save(tmp_path / "p.json")
    params = load_params(tmp_path / "p.json")
    assert params == {
        "alpha": 0.5,
        "beta": 1.0,
        "unk_score": -math.inf,
        "sil_score": 0.0,
        "log_add": True,
    }
    assert "log_add" in res.table().splitlines()[0]
    build(unigrams, lexicon=True, **params)  # accepted as it is


def test_lexicon_scores_need_a_lexicon(dev, unigrams):
    with pytest.raises(ValueError, match="unk_scores tune the lexicon mode"):
        tune(build(unigrams), *dev, [0.5], [1.0], unk_scores=[-1.0])
    with pytest.raises(TypeError, match=r"log_adds\[0\] must be True or False"):
        tune(build(unigrams, lexicon=True), *dev, [0.5], [1.0], log_adds=[1])


def test_cli_tune_and_decode_with_a_lexicon(files, capsys):
    d, common = files
    out = d / "lex.json"
    args = ["tune", *common, "--refs", str(d / "refs.tsv"), "--alphas", "0.6", "--betas", "1.5"]
    args += ["--lexicon", "unigrams", "--log-add", "both", "--unk-scores=-inf,-5"]
    args += ["--beam-width", str(BEAM), "-o", str(out)]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "log_add" in printed and "best: alpha 0.6 beta 1.5 unk_score" in printed
    params = load_params(out)
    lex = d / "lexicon.txt"
    lex.write_text("".join(f"{w} {' '.join(w)} |\n" for w in small_lm.unigrams()))
    outs = {}
    for name, extra in [
        ("params", ["--lexicon", "unigrams", "--params", str(out)]),
        ("file", ["--lexicon", str(lex), "--params", str(out)]),
        (
            "explicit",
            [
                "--lexicon",
                "unigrams",
                "--alpha",
                "0.6",
                "--beta",
                "1.5",
                f"--unk-score={params['unk_score']}",
                "--log-add",
                "on" if params["log_add"] else "off",
            ],
        ),
    ]:
        path = d / f"lex_{name}.jsonl"
        argv = ["decode", *common, "--beam-width", str(BEAM), "-q", "-o", str(path), *extra]
        assert cli.main(argv) == 0
        outs[name] = path.read_text()
    assert outs["params"] == outs["explicit"] == outs["file"]
    strict = d / "lex_strict.jsonl"
    argv = ["decode", *common, "--lexicon", str(lex), "--unk-score=-inf", "-q", "-o", str(strict)]
    assert cli.main(argv) == 0
    texts = [json.loads(line)["text"] for line in strict.read_text().splitlines()]
    assert all(set(t.split()) <= set(small_lm.unigrams()) for t in texts)


def test_cli_lexicon_errors(files, capsys):
    d, common = files
    argv = ["decode", *common, "--lexicon", str(d / "missing.txt"), "-q", "-o", str(d / "x")]
    assert cli.main(argv) == cli.EXIT_USAGE
    assert "--lexicon" in capsys.readouterr().err
    argv = ["tune", *common, "--refs", str(d / "refs.tsv"), "--log-add", "on"]
    assert cli.main(argv) == cli.EXIT_USAGE
    assert "need --lexicon" in capsys.readouterr().err
    argv = ["decode", *common, "--decoder", "greedy", "--lexicon", "unigrams", "-o", str(d / "y")]
    assert cli.main(argv) == cli.EXIT_USAGE
    assert "--lexicon" in capsys.readouterr().err
