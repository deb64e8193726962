"""Large output layers: skip-gram against gensim, equal-time likelihood, cost as V grows.

    python benchmarks/large_output.py [--corpus FILE] [--epochs 1] [--part all|gensim|layers|scaling]

One command, three parts, one JSON (benchmarks/results/large_output.json) and one PNG
(benchmarks/results/large_output_scaling.png):

1. gensim: our ``train_skipgram`` against gensim's ``Word2Vec`` on the same corpus and
   settings (skip-gram, dim 100, window 5, min_count 5, sample 1e-3, alpha 0.025, 2
   threads / workers=2), for hierarchical softmax (``hs=1, negative=0``) and negative
   sampling (``hs=0, negative=5``): raw corpus words per second of training (vocabulary
   building excluded for both, numba compile excluded by a warm-up) and analogy accuracy on
   gensim's questions-words.txt, both scored by the same ``analogy_accuracy``.
2. layers: each of our five output layers trained for the same number of seconds, then
   the exact held-out log-likelihood (full softmax; the tree for hs) on sentences held
   out from training, and analogy accuracy.
3. scaling: time per example of the library layers (``full_softmax_loss``,
   ``HierarchicalSoftmax.loss``, ``sampled_softmax_loss``, ``nce_loss``,
   ``negative_sampling_loss``, all with gradients) for V = 10^3 .. 10^6, D = 64, float32,
   batches of 64 examples, 64 samples, Zipfian class frequencies, one BLAS thread;
   medians of repeated runs.

The corpus defaults to the KJV + Shakespeare file written by benchmarks/get_corpora.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from softargmax.large_output.evaluate import analogy_accuracy, heldout_log_likelihood  # noqa: E402
from softargmax.large_output.hierarchical import HierarchicalSoftmax  # noqa: E402
from softargmax.large_output.huffman import HuffmanTree  # noqa: E402
from softargmax.large_output.losses import (  # noqa: E402
    full_softmax_loss,
    nce_loss,
    negative_sampling_loss,
    sampled_softmax_loss,
)
from softargmax.large_output.samplers import LogUniformSampler  # noqa: E402
from softargmax.large_output.skipgram import (  # noqa: E402
    OUTPUT_LAYERS,
    iter_sentences,
    train_skipgram,
)

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_CORPUS = RESULTS / "corpora" / "kjv_shakespeare.txt"
SETTINGS = {"dim": 100, "window": 5, "min_count": 5, "sample": 1e-3, "alpha": 0.025, "threads": 2}


def part_gensim(corpus: Path, epochs: int, seed: int) -> list[dict]:
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    sentences = list(iter_sentences(corpus))
    tokens = sum(map(len, sentences))
    train_skipgram(sentences[:200], dim=8, epochs=1, min_count=1, output_layer="hs", threads=1)
    train_skipgram(sentences[:200], dim=8, epochs=1, min_count=1, output_layer="negative", threads=1)
    rows = []
    for name, hs, neg in (("hs", 1, 0), ("negative", 0, 5)):
        m = train_skipgram(sentences, epochs=epochs, output_layer=name, negative=max(neg, 1),
                           rng=seed, **SETTINGS)
        ours_t = m.stats["seconds"]
        ours_acc = analogy_accuracy(m.vectors, m.vocab.words)
        g = Word2Vec(vector_size=SETTINGS["dim"], window=SETTINGS["window"],
                     min_count=SETTINGS["min_count"], sample=SETTINGS["sample"],
                     alpha=SETTINGS["alpha"], workers=SETTINGS["threads"], sg=1, hs=hs,
                     negative=neg, seed=seed)
        g.build_vocab(LineSentence(str(corpus)))
        t0 = time.perf_counter()
        g.train(LineSentence(str(corpus)), total_examples=g.corpus_count, epochs=epochs)
        g_t = time.perf_counter() - t0
        g_acc = analogy_accuracy(g.wv.vectors, list(g.wv.index_to_key))
        row = {
            "layer": name, "epochs": epochs, "tokens": tokens, "vocab": len(m.vocab),
            "ours_seconds": ours_t, "gensim_seconds": g_t,
            "ours_words_per_s": tokens * epochs / ours_t, "gensim_words_per_s": tokens * epochs / g_t,
            "speed_ratio": g_t / ours_t,
            "ours_analogy": ours_acc.accuracy, "gensim_analogy": g_acc.accuracy,
            "analogy_questions": ours_acc.evaluated, "gensim_analogy_questions": g_acc.evaluated,
        }
        rows.append(row)
        print(f"{name:9s} ours {row['ours_words_per_s']:9.0f} w/s  gensim {row['gensim_words_per_s']:9.0f} w/s"
              f"  ratio {row['speed_ratio']:.2f}  analogy ours {ours_acc.accuracy:.4f} "
              f"gensim {g_acc.accuracy:.4f} (of {ours_acc.evaluated}/{g_acc.evaluated} questions)",
              flush=True)
    return rows


def part_layers(corpus: Path, seconds: float, seed: int, max_pairs: int) -> list[dict]:
    sentences = list(iter_sentences(corpus))
    train = [s for i, s in enumerate(sentences) if i % 20 != 0]
    held = [s for i, s in enumerate(sentences) if i % 20 == 0]
    for layer in OUTPUT_LAYERS:  # compile outside the timed budget
        train_skipgram(train[:100], dim=8, epochs=1, min_count=1, output_layer=layer, threads=1)
    rows = []
    base = train_skipgram(train, epochs=0, output_layer="negative", rng=seed, **SETTINGS)
    ll_uniform = heldout_log_likelihood(base, held, max_pairs=max_pairs, rng=0)
    for layer in OUTPUT_LAYERS:
        m = train_skipgram(train, epochs=100, max_seconds=seconds, output_layer=layer, rng=seed,
                           **SETTINGS)
        t0 = time.perf_counter()
        ll = heldout_log_likelihood(m, held, max_pairs=max_pairs, rng=0)
        acc = analogy_accuracy(m.vectors, m.vocab.words)
        row = {"layer": layer, "seconds": m.stats["seconds"], "pairs": m.stats["pairs"],
               "epochs_done": m.stats["words"] / sum(map(len, train)),
               "heldout_ll": ll, "uniform_ll": ll_uniform, "analogy": acc.accuracy,
               "eval_seconds": time.perf_counter() - t0}
        rows.append(row)
        print(f"{layer:9s} {row['pairs']:11.0f} pairs in {row['seconds']:5.1f} s "
              f"({row['epochs_done']:.2f} epochs)  held-out log p = {ll:7.3f} nats/pair "
              f"(uniform {ll_uniform:.3f})  analogy {acc.accuracy:.4f}", flush=True)
    return rows


def _median_time(fn, repeats: int, budget: float = 3.0) -> float:
    fn()
    times = []
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget:
            break
    return float(np.median(times))


def _scaling_row(v: int, rng: np.random.Generator, n: int, d: int, s: int) -> dict:
    W = rng.standard_normal((v, d), dtype=np.float32) * np.float32(0.1)
    b = np.zeros(v, dtype=np.float32)
    h = rng.standard_normal((n, d), dtype=np.float32)
    counts = np.floor(1e10 / np.arange(1, v + 1))  # Zipf's law, classes by frequency
    y = rng.choice(v, size=n, p=counts / counts.sum())
    t0 = time.perf_counter()
    tree = HuffmanTree.from_counts(counts)
    tree_s = time.perf_counter() - t0
    hs = HierarchicalSoftmax(tree, d, rng=0, init_scale=0.1, dtype=np.float32)
    kw = {"num_sampled": s, "sampler": LogUniformSampler(v), "return_grad": True, "rng": rng}
    fns = {
        "full softmax": lambda: full_softmax_loss(h, W, b, y, return_grad=True),
        "hierarchical": lambda: hs.loss(h, y, return_grad=True),
        "sampled": lambda: sampled_softmax_loss(h, W, b, y, **kw),
        "nce": lambda: nce_loss(h, W, b, y, **kw),
        "negative": lambda: negative_sampling_loss(h, W, b, y, **kw),
    }
    row: dict = {"V": v, "N": n, "D": d, "S": s, "huffman_build_s": tree_s,
                 "mean_depth": float(np.dot(tree.depths, counts) / counts.sum()),
                 "max_depth": tree.max_depth}
    for name, fn in fns.items():
        row[name] = _median_time(fn, 15 if v < 10**6 else 7, budget=6.0) / n * 1e6  # us per example
    print(f"V={v:>8d}  " + "  ".join(f"{k} {row[k]:9.2f}" for k in fns)
          + f"   (us/example; mean code length {row['mean_depth']:.1f})", flush=True)
    return row


def part_scaling(seed: int, n: int = 64, d: int = 64, s: int = 64) -> list[dict]:
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    with threadpool_limits(1):  # one BLAS thread: stable per-example timings on a shared box
        return [_scaling_row(v, rng, n, d, s) for v in (10**3, 10**4, 10**5, 10**6)]


def plot_scaling(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    vs = [r["V"] for r in rows]
    for name in ("full softmax", "hierarchical", "sampled", "nce", "negative"):
        ax.loglog(vs, [r[name] for r in rows], marker="o", label=name)
    ax.set_xlabel("number of classes V")
    ax.set_ylabel("time per example, loss + gradients (µs)")
    ax.set_title("Output-layer cost as V grows (D=64, float32, 64 samples)")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=20.0, help="training budget per layer (part 2)")
    ap.add_argument("--max-pairs", type=int, default=5000, help="held-out pairs scored (part 2)")
    ap.add_argument("--part", choices=["all", "gensim", "layers", "scaling"], default="all")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=RESULTS / "large_output.json")
    args = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    need_corpus = args.part in ("all", "gensim", "layers")
    if need_corpus and not args.corpus.is_file():
        print(f"corpus {args.corpus} not found: run `python benchmarks/get_corpora.py` (make data)",
              file=sys.stderr)
        return 2
    out: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                             "load_avg": os.getloadavg()}, "settings": SETTINGS}
    if args.part in ("all", "gensim"):
        print(f"== skip-gram vs gensim Word2Vec, {args.epochs} epoch(s) on {args.corpus.name}")
        out["gensim"] = part_gensim(args.corpus, args.epochs, args.seed)
    if args.part in ("all", "layers"):
        print(f"== output layers at equal training time ({args.seconds:.0f} s each)")
        out["layers"] = part_layers(args.corpus, args.seconds, args.seed, args.max_pairs)
    if args.part in ("all", "scaling"):
        print("== time per example as V grows")
        out["scaling"] = part_scaling(args.seed)
        plot_scaling(out["scaling"], RESULTS / "large_output_scaling.png")
    out["machine"]["load_avg_end"] = os.getloadavg()
    args.json.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
