"""Streaming LM decoding (``decoder.stream()``): per-chunk latency, throughput of many streams,
memory over an hour of audio, and agreement with offline decoding.

Input: simulated ASR log-probabilities (../shared/data/simulate.py, 29 character labels) of
the development sentences, one utterance after another (sentences repeated with new seeds
once all were used), cut into chunks of ``--chunk`` frames; the 4-gram model
(../shared/data/lm_4gram.arpa, scored from n-gram tables in the kernel) with its vocabulary as
unigrams; ``decode_beams``'s defaults except ``--beam``. Audio time assumes ``--frame-ms``
milliseconds per frame (20 ms: wav2vec2-style CTC models).

* latency: one stream on the calling thread (one kernel thread), the wall time of each
  ``feed`` (and its thread's CPU time, which leaves out the time other processes held the
  core) and of ``partial`` after it, over ``--latency-minutes`` of audio;
* throughput: ``--streams`` streams fed together by ``feed_streams`` on 1 and on 2 threads,
  each ``--stream-seconds`` of its own audio, ``--repeat`` times in turn (the best time of
  each is kept); the real-time factor is the wall time over the audio time of all streams
  (below 1: faster than real time; 1 / RTF streams could be served live on those threads).
  The load average is printed: on a machine whose cores other processes use, two threads
  cannot run twice as fast;
* memory: one stream fed ``--hours`` of audio; the search's nodes and arrays
  (``stream.pool_sizes``), the bytes NumPy holds for them (tracemalloc) and the process's RSS,
  beside ``decode_beams`` on the same frames (its tracemalloc peak);
* agreement: every beam of ``finish()`` against ``decode_beams`` on the concatenated chunks
  (text, word frames, scores, tokens, token frames, word confidences, LM state), for each
  development utterance streamed on its own and for the hour-long stream; must be 100%.

    python bench/bench_stream.py                   # about 5 minutes on 2 cores
    python bench/bench_stream.py --hours 0.1 --latency-minutes 2 --stream-seconds 20
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import time
import tracemalloc

import numpy as np
from _data import DATA, load_simulator

import fastctc


def rss_mb() -> float:
    """Resident set size now, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def audio(sents, simulate, n_frames: int, start: int):
    """At least ``n_frames`` frames: utterances one after another from sentence ``start``,
    each simulated with its own seed."""
    parts, n, k = [], 0, start
    while n < n_frames:
        x = simulate.simulate_char(sents[k % len(sents)], k)
        parts.append(x)
        n += x.shape[0]
        k += 1
    return np.concatenate(parts)[:n_frames]


def chunks_of(x: np.ndarray, size: int) -> list[np.ndarray]:
    return [x[a : a + size] for a in range(0, x.shape[0], size)]


def fields(b):
    return (
        b.text,
        b.text_frames,
        b.logit_score,
        b.lm_score,
        b.last_lm_state,
        b.tokens.tolist(),
        b.token_frames.tolist(),
        b.word_confidences,
    )


def same(got, want) -> bool:
    return len(got) == len(want) and all(
        fields(g) == fields(w) for g, w in zip(got, want, strict=True)
    )


def pct(a, q):
    return float(np.percentile(np.asarray(a) * 1e3, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beam", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=40, help="frames per chunk")
    ap.add_argument("--frame-ms", type=float, default=20.0, help="audio per frame (assumed)")
    ap.add_argument("--latency-minutes", type=float, default=10.0)
    ap.add_argument("--streams", type=int, default=64)
    ap.add_argument("--stream-seconds", type=float, default=60.0)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3, help="runs of the throughput test")
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--beta", type=float, default=1.5)
    ap.add_argument("--model", default=str(DATA / "lm_4gram.arpa"))
    args = ap.parse_args()
    simulate = load_simulator()
    sents = (DATA / "dev_sentences.txt").read_text().splitlines()
    unigrams = (DATA / "vocab.txt").read_text().split()
    dec = fastctc.build_ctcdecoder(
        simulate.CHAR_LABELS,
        kenlm_model_path=args.model,
        unigrams=unigrams,
        alpha=args.alpha,
        beta=args.beta,
    )
    K, CH = args.beam, args.chunk
    fps = 1000.0 / args.frame_ms
    kw = dict(beam_width=K)
    # warm-up: compilation and cache loading are not timed
    w = dec.stream(**kw)
    w.feed(simulate.simulate_char(sents[0], 0))
    w.partial()
    w.finish()
    print(f"# load average {os.getloadavg()[0]:.2f} at the start (other processes share the cores)")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; numpy "
        f"{np.__version__}, fastctc {fastctc.__version__}; model {os.path.basename(args.model)}"
        f", alpha={args.alpha}, beta={args.beta}, beam {K}, {CH}-frame chunks, "
        f"{args.frame_ms:g} ms per frame assumed ({CH * args.frame_ms:g} ms of audio a chunk)"
    )
    rows: list[tuple[str, str]] = []

    # ---------------------------------------------------------------- agreement, per utterance
    lps = [simulate.simulate_char(s, i) for i, s in enumerate(sents)]
    agree = 0
    for x in lps:
        s = dec.stream(**kw)
        for c in chunks_of(x, CH):
            s.feed(c)
        agree += same(s.finish(), dec.decode_beams(x, **kw))
    rows.append(
        (
            f"agreement, {len(lps)} utterances streamed alone (all beams, all fields)",
            f"{agree}/{len(lps)} ({100 * agree / len(lps):.1f}%)",
        )
    )

    # ---------------------------------------------------------------- latency, one stream
    x = audio(sents, simulate, int(args.latency_minutes * 60 * fps), 0)
    s = dec.stream(**kw)
    feed_t, feed_cpu, part_t = [], [], []
    for c in chunks_of(x, CH):
        t0 = time.perf_counter()
        u0 = time.thread_time()
        s.feed(c)
        feed_cpu.append(time.thread_time() - u0)
        t1 = time.perf_counter()
        s.partial()
        t2 = time.perf_counter()
        feed_t.append(t1 - t0)
        part_t.append(t2 - t1)
    t0 = time.perf_counter()
    s.finish()
    t_fin = time.perf_counter() - t0
    n_chunks = len(feed_t)
    rows += [
        (
            f"feed latency per {CH}-frame chunk, 1 thread ({n_chunks} chunks, "
            f"{args.latency_minutes:g} min): median / p99 / max",
            f"{pct(feed_t, 50):.2f} / {pct(feed_t, 99):.2f} / {max(feed_t) * 1e3:.2f} ms",
        ),
        (
            "  the same, the thread's CPU time (without time other processes took the core)",
            f"{pct(feed_cpu, 50):.2f} / {pct(feed_cpu, 99):.2f} / {max(feed_cpu) * 1e3:.2f} ms",
        ),
        (
            "partial() after each chunk: median / p99",
            f"{pct(part_t, 50):.2f} / {pct(part_t, 99):.2f} ms",
        ),
        ("finish() at the end", f"{t_fin * 1e3:.2f} ms"),
        (
            "one stream, 1 thread: real-time factor (feed time / audio time)",
            f"{sum(feed_t) / (x.shape[0] / fps):.4f}",
        ),
    ]

    # ---------------------------------------------------------------- throughput, many streams
    n_str = args.streams
    per = int(args.stream_seconds * fps)
    xs = [audio(sents, simulate, per, 7 * i) for i in range(n_str)]
    steps = [chunks_of(x, CH) for x in xs]
    best = {1: np.inf, 2: np.inf}
    offline = dict(best)  # decode_beams_batch of the same audio, as a yardstick
    for _ in range(args.repeat):  # 1 and 2 threads in turn; the best of each is kept
        for threads in (1, 2):
            streams = [dec.stream(**kw) for _ in range(n_str)]
            t0 = time.perf_counter()
            for k in range(len(steps[0])):
                dec.feed_streams(streams, [st[k] for st in steps], num_threads=threads)
            outs = [st.finish() for st in streams]
            best[threads] = min(best[threads], time.perf_counter() - t0)
            t0 = time.perf_counter()
            dec.decode_beams_batch(None, xs, num_threads=threads, **kw)
            offline[threads] = min(offline[threads], time.perf_counter() - t0)
    for threads, wall in best.items():
        rtf = wall / (n_str * per / fps)
        rows.append(
            (
                f"{n_str} streams x {args.stream_seconds:g} s, feed_streams on {threads} "
                f"thread{'s' if threads > 1 else ''} (best of {args.repeat}): wall, RTF, "
                "streams served live",
                f"{wall:.2f} s, RTF {rtf:.4f}, {1 / rtf:.0f} streams",
            )
        )
    rows.append(
        (
            "  the same audio offline, decode_beams_batch on 1 / 2 threads (best of each)",
            f"{offline[1]:.2f} / {offline[2]:.2f} s",
        )
    )
    ok = sum(same(o, dec.decode_beams(x, **kw)) for o, x in zip(outs, xs, strict=True))
    rows.append(
        (f"agreement, the {n_str} concurrent streams", f"{ok}/{n_str} ({100 * ok / n_str:.1f}%)")
    )

    # ---------------------------------------------------------------- memory, a long stream
    x = audio(sents, simulate, int(args.hours * 3600 * fps), 3)
    gc.collect()
    rss0 = rss_mb()
    tracemalloc.start()
    s = dec.stream(**kw)
    peak_nodes = 0
    t0 = time.perf_counter()
    for c in chunks_of(x, CH):
        s.feed(c)
        ps = s.pool_sizes
        peak_nodes = max(peak_nodes, ps["text"] + ps["tokens"] + ps["word_frames"])
    t_long = time.perf_counter() - t0
    cur, peak = tracemalloc.get_traced_memory()
    ps = s.pool_sizes
    rss1 = rss_mb()
    got = s.finish()
    tracemalloc.stop()
    del s
    gc.collect()
    tracemalloc.start()
    want = dec.decode_beams(x, **kw)
    _, peak_off = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    hours = x.shape[0] / fps / 3600
    ok_long = same(got, want)
    rows += [
        (
            f"long stream: {x.shape[0]} frames ({hours:g} h), 1 thread: feed time, RTF",
            f"{t_long:.1f} s, RTF {t_long / (x.shape[0] / fps):.4f}",
        ),
        (
            "  search nodes held at the end (text / tokens / word frames), peak of the sum",
            f"{ps['text']} / {ps['tokens']} / {ps['word_frames']}, peak {peak_nodes}",
        ),
        (
            "  array capacities at the end (text / tokens / word frames)",
            f"{ps['text_capacity']} / {ps['tokens_capacity']} / {ps['word_frames_capacity']}",
        ),
        (
            "  committed output (tokens, words)",
            f"{ps['committed_tokens']}, {ps['committed_words']}",
        ),
        (
            "  tracemalloc: held after the last chunk / peak while streaming",
            f"{cur / 2**20:.1f} / {peak / 2**20:.1f} MiB",
        ),
        ("  process RSS before / after streaming", f"{rss0:.0f} / {rss1:.0f} MiB"),
        ("  decode_beams on the same frames: tracemalloc peak", f"{peak_off / 2**20:.1f} MiB"),
        ("  agreement with decode_beams (all beams, all fields)", "100%" if ok_long else "NO"),
        (
            "  peak RSS of the process (includes decode_beams)",
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB",
        ),
    ]
    rows.append(("load average at the end", f"{os.getloadavg()[0]:.2f}"))
    width = max(len(r[0]) for r in rows)
    print()
    for name, val in rows:
        print(f"{name:<{width}}  {val}")


if __name__ == "__main__":
    main()
