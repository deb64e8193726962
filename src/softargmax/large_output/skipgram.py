"""Skip-gram word embeddings trained with a selectable large-output layer.

``train_skipgram`` is word2vec's skip-gram (Mikolov et al. 2013) with the output layer
chosen among the full softmax, hierarchical softmax, sampled softmax, NCE and negative
sampling. The inner loops are numba kernels (:mod:`softargmax._kernels.skipgram`) that
release the GIL; ``threads`` Python threads train the same arrays at once without locks
(Hogwild), like word2vec and gensim. Frequent words are subsampled and the learning rate
decays linearly to ``min_alpha``, as in word2vec.

Orientation: for every pair of words within the window, the *context* word's vector
(a row of :attr:`SkipGramModel.vectors`) is the input and the *centre* word is the class
to predict, as in word2vec's C code.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._common import as_positive_int
from .hierarchical import HierarchicalSoftmax
from .huffman import HuffmanTree
from .samplers import UnigramSampler

__all__ = [
    "SkipGramModel",
    "Vocabulary",
    "iter_sentences",
    "tokenize",
    "train_skipgram",
]

OUTPUT_LAYERS = ("softmax", "hs", "sampled", "nce", "negative")
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")
MAX_SENTENCE = 10_000


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens ``[a-z]+(?:'[a-z]+)?`` (the tokeniser of the shared corpora).

    Examples
    --------
    >>> from softargmax.large_output.skipgram import tokenize
    >>> tokenize("In the Beginning God's word, 1611.")
    ['in', 'the', 'beginning', "god's", 'word']
    """
    return _TOKEN.findall(text.lower())


def iter_sentences(path: str | os.PathLike[str]) -> Iterator[list[str]]:
    """The sentences of a text file: one per non-empty line, tokenised by :func:`tokenize`.

    Lines longer than 10,000 tokens are cut into pieces of that length (as gensim does).

    Examples
    --------
    >>> import tempfile, os
    >>> from softargmax.large_output.skipgram import iter_sentences
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = os.path.join(d, "c.txt")
    ...     with open(path, "w") as fh:
    ...         _ = fh.write("To be, or not to be." + chr(10) * 2 + "That is the question.")
    ...     list(iter_sentences(path))
    [['to', 'be', 'or', 'not', 'to', 'be'], ['that', 'is', 'the', 'question']]
    """
    p = Path(path)
    if not p.is_file():
        msg = f"corpus must be a readable text file, got {str(path)!r}"
        raise OSError(msg)
    with p.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            toks = tokenize(line)
            for i in range(0, len(toks), MAX_SENTENCE):
                yield toks[i : i + MAX_SENTENCE]


@dataclass
class Vocabulary:
    """Words sorted by decreasing count (ties alphabetical), with their counts.

    Examples
    --------
    >>> from softargmax.large_output.skipgram import Vocabulary
    >>> v = Vocabulary.build([["a", "b", "a"], ["c", "a", "b"]], min_count=2)
    >>> v.words, v.counts.tolist()
    (['a', 'b'], [3, 2])
    """

    words: list[str]
    counts: np.ndarray
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, sentences: Iterable[list[str]], min_count: int = 5) -> Vocabulary:
        counter: Counter[str] = Counter()
        for s in sentences:
            counter.update(s)
        kept = sorted(((c, w) for w, c in counter.items() if c >= min_count), key=lambda t: (-t[0], t[1]))
        return cls([w for _, w in kept], np.array([c for c, _ in kept], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentences: Iterable[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Word ids (out-of-vocabulary words dropped) and sentence start offsets."""
        ids: list[int] = []
        starts = [0]
        index = self.index
        for s in sentences:
            ids.extend(index[w] for w in s if w in index)
            if len(ids) > starts[-1]:
                starts.append(len(ids))
        return np.asarray(ids, dtype=np.int32), np.asarray(starts, dtype=np.int64)


@dataclass
class SkipGramModel:
    """Trained skip-gram parameters and the output layer they were trained with.

    Attributes
    ----------
    vocab : Vocabulary
    vectors : ndarray of float32, shape (V, D)
        Input word vectors (word2vec's ``syn0``): the embeddings.
    output : ndarray of float32
        Output parameters: ``(V - 1, D)`` inner-node vectors for ``"hs"``, otherwise
        ``(V, D)`` output word vectors (``syn1neg``).
    bias : ndarray of float32, shape (V,)
        Output biases (trained for ``"softmax"``, ``"sampled"`` and ``"nce"``; zero for
        ``"negative"`` and unused by ``"hs"``).
    output_layer : str
    window : int
    tree : HuffmanTree or None
        The Huffman tree of ``"hs"``.
    stats : dict
        ``words`` (raw corpus words processed), ``pairs`` (trained examples),
        ``seconds``, ``words_per_second``, ``loss`` (mean training loss per pair; NaN
        when not computed).

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.large_output.skipgram import train_skipgram
    >>> m = train_skipgram([["a", "b", "c", "a"]] * 20, dim=4, epochs=1, min_count=1,
    ...                    output_layer="sampled", threads=1, rng=0)
    >>> p = np.exp(m.log_prob([0, 0, 0], [0, 1, 2]))  # normalised over the 3 words
    >>> round(float(p.sum()), 6)
    1.0
    """

    vocab: Vocabulary
    vectors: np.ndarray
    output: np.ndarray
    bias: np.ndarray
    output_layer: str
    window: int
    tree: HuffmanTree | None = None
    stats: dict[str, float] = field(default_factory=dict)

    def log_prob(self, inputs: Any, targets: Any) -> np.ndarray:
        """Exact ``log p(target | input word)`` of the model, normalised over all V words.

        Uses the full softmax over ``output`` (and ``bias``) for every layer except
        ``"hs"``, whose tree gives a normalised distribution by construction.
        """
        from ..core import logsumexp

        x = np.asarray(inputs, dtype=np.int64)
        y = np.asarray(targets, dtype=np.int64)
        h = self.vectors[x].astype(np.float64)
        if self.output_layer == "hs":
            assert self.tree is not None
            hs = HierarchicalSoftmax(self.tree, self.vectors.shape[1])
            hs.weight = self.output.astype(np.float64)
            return hs.log_prob(h, y)
        logits = h @ self.output.T.astype(np.float64) + self.bias.astype(np.float64)
        return logits[np.arange(y.shape[0]), y] - logsumexp(logits, axis=-1)

    def save_word2vec_format(self, path: str | os.PathLike[str]) -> None:
        """Write the vectors in word2vec's text format: a ``V D`` header, then one word a line."""
        with Path(path).open("w", encoding="utf-8") as fh:
            fh.write(f"{len(self.vocab)} {self.vectors.shape[1]}\n")
            for w, vec in zip(self.vocab.words, self.vectors, strict=True):
                fh.write(w + " " + " ".join(f"{x:.6g}" for x in vec.tolist()) + "\n")


def _check_layer(output_layer: Any) -> str:
    if output_layer not in OUTPUT_LAYERS:
        msg = f"output_layer must be one of {OUTPUT_LAYERS}, got {output_layer!r}"
        raise ValueError(msg)
    return str(output_layer)


def _real(value: Any, name: str, lo: float, lo_open: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        msg = f"{name} must be a real number, got {value!r}"
        raise TypeError(msg) from None
    if not np.isfinite(x) or x < lo or (lo_open and x == lo):
        msg = f"{name} must be a finite number {'>' if lo_open else '>='} {lo}, got {value!r}"
        raise ValueError(msg)
    return x


def train_skipgram(
    corpus: str | os.PathLike[str] | Iterable[list[str]],
    *,
    dim: int = 100,
    window: int = 5,
    epochs: int = 5,
    output_layer: str = "negative",
    negative: int = 5,
    min_count: int = 5,
    sample: float = 1e-3,
    alpha: float = 0.025,
    min_alpha: float = 1e-4,
    threads: int = 2,
    batch_words: int = 10_000,
    max_seconds: float | None = None,
    rng: Any = None,
    progress: bool = False,
    compute_loss: bool = False,
) -> SkipGramModel:
    """Train skip-gram word vectors with the chosen output layer.

    Parameters
    ----------
    corpus : path or iterable of lists of str
        A text file (one sentence a line, tokenised by :func:`tokenize`) or tokenised
        sentences. It is read twice (vocabulary, then ids), so an iterable must be
        re-iterable (a list).
    dim : int
        Size of the vectors.
    window : int
        Maximum distance between the two words of a pair; each position draws its
        window uniformly from ``1..window`` (word2vec's weighting of near words).
    epochs : int
        Passes over the corpus (0 returns the untrained initial model).
    output_layer : {"softmax", "hs", "sampled", "nce", "negative"}
        The full softmax (O(V) per pair), hierarchical softmax over a Huffman tree of the
        counts, sampled softmax with the logQ correction, NCE, or word2vec's negative
        sampling. The sampled layers draw ``negative`` classes per pair from the unigram
        distribution to the power 0.75 (alias method) and skip accidental hits.
    negative : int
        Samples per pair for ``"sampled"``, ``"nce"`` and ``"negative"``.
    min_count : int
        Words rarer than this are dropped.
    sample : float
        Subsampling threshold ``t``: a word of frequency ``f`` is kept with probability
        ``(sqrt(f / t) + 1) t / f`` (word2vec's formula); 0 disables it.
    alpha, min_alpha : float
        The learning rate decays linearly from ``alpha`` to ``min_alpha`` over training.
    threads : int
        Worker threads (Hogwild updates; results are reproducible only with 1 thread).
    batch_words : int
        Words per job handed to a thread.
    max_seconds : float, optional
        A time budget: the learning-rate schedule runs on the larger of the fraction of
        words and the fraction of time spent, and training stops when either reaches 1
        (running jobs end after their current sentence), for comparisons at equal
        training time.
    rng : int or numpy.random.Generator, optional
        Seed for the initial vectors and for every job's random stream.
    progress : bool
        Show a tqdm progress bar with words/second on stderr.
    compute_loss : bool
        Accumulate the training loss (``stats["loss"]``, and on the progress bar); it
        costs a log per term for ``"hs"``, ``"nce"`` and ``"negative"``, so it is off by
        default (as in gensim); the softmax layers always report it.

    Returns
    -------
    SkipGramModel

    Examples
    --------
    >>> from softargmax.large_output.skipgram import train_skipgram
    >>> sents = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "sat"]] * 50
    >>> m = train_skipgram(sents, dim=8, epochs=2, min_count=1, output_layer="hs",
    ...                    threads=1, rng=0)
    >>> m.vectors.shape, m.output.shape
    ((6, 8), (5, 8))
    """
    from .._kernels import skipgram as K

    layer = _check_layer(output_layer)
    dim = as_positive_int(dim, "dim")
    window = as_positive_int(window, "window")
    epochs = as_positive_int(epochs, "epochs", minimum=0)
    negative = as_positive_int(negative, "negative")
    min_count = as_positive_int(min_count, "min_count")
    threads = as_positive_int(threads, "threads")
    batch_words = as_positive_int(batch_words, "batch_words")
    sample = _real(sample, "sample", 0.0)
    alpha = _real(alpha, "alpha", 0.0, lo_open=True)
    min_alpha = _real(min_alpha, "min_alpha", 0.0)
    budget = None if max_seconds is None else _real(max_seconds, "max_seconds", 0.0, lo_open=True)

    if isinstance(corpus, (str, os.PathLike)):
        path = corpus
        vocab = Vocabulary.build(iter_sentences(path), min_count)
        ids, starts = vocab.encode(iter_sentences(path))
    else:
        if isinstance(corpus, Iterator):
            msg = "corpus must be a path or a re-iterable collection of sentences, got an iterator"
            raise TypeError(msg)
        vocab = Vocabulary.build(corpus, min_count)
        ids, starts = vocab.encode(corpus)
    v = len(vocab)
    if v < 2:
        msg = f"the corpus must have at least 2 words with count >= min_count={min_count}, got {v}"
        raise ValueError(msg)

    gen = np.random.default_rng(rng)
    vectors = ((gen.random((v, dim), dtype=np.float32) - 0.5) / dim).astype(np.float32)
    bias = np.zeros(v, dtype=np.float32)
    counts = vocab.counts.astype(np.float64)
    tree = None
    offsets = np.zeros(1, dtype=np.int64)
    codes = np.zeros(0, dtype=np.uint8)
    paths = np.zeros(0, dtype=np.int32)
    if layer == "hs":
        tree = HuffmanTree.from_counts(counts)
        output = np.zeros((v - 1, dim), dtype=np.float32)
        # Writeable copies: numba compiles read-only arrays as a separate type.
        offsets, codes, paths = tree.offsets.copy(), tree.codes.copy(), tree.paths.copy()
    else:
        output = np.zeros((v, dim), dtype=np.float32)
    sampler = UnigramSampler(counts, power=0.75)
    log_kq = np.log(negative * sampler.probs)
    alias_prob = sampler.alias_prob.copy()
    alias = sampler.alias.copy()
    total = counts.sum()
    if sample > 0:
        f = counts / total
        keep_prob = np.minimum((np.sqrt(f / sample) + 1.0) * sample / f, 1.0)
    else:
        keep_prob = np.ones(v)
    mode = {"softmax": K.SOFTMAX, "hs": K.HS, "sampled": K.SAMPLED, "nce": K.NCE,
            "negative": K.NEGATIVE}[layer]

    # Jobs: runs of whole sentences of about batch_words words.
    n_sent = starts.shape[0] - 1
    bounds = [0]
    for i in range(1, n_sent + 1):
        if starts[i] - starts[bounds[-1]] >= batch_words or i == n_sent:
            bounds.append(i)
    jobs = [(e, bounds[j], bounds[j + 1]) for e in range(epochs) for j in range(len(bounds) - 1)]
    seeds = gen.integers(0, 2**63 - 1, size=max(len(jobs), 1), dtype=np.int64)
    corpus_words = int(starts[-1])
    total_words = corpus_words * epochs

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_words, unit="word", unit_scale=True, desc=f"skip-gram {layer}",
                   dynamic_ncols=True, leave=True)
    done_words = 0
    pairs = 0
    loss_sum = 0.0
    submitted = 0
    t0 = time.perf_counter()

    def fraction() -> float:
        frac = submitted / total_words if total_words else 1.0
        if budget is not None:
            frac = max(frac, (time.perf_counter() - t0) / budget)
        return frac

    stop = np.zeros(1, dtype=np.uint8)  # set when the time budget runs out: jobs end early
    pending: set[Future[Any]] = set()
    job_iter = iter(enumerate(jobs))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * threads:
                nxt = next(job_iter, None)
                frac = fraction()
                if nxt is None or frac >= 1.0:
                    exhausted = True
                    break
                k, (_, a, b) = nxt
                lr = alpha - (alpha - min_alpha) * frac
                pending.add(pool.submit(
                    K.train_job, ids, starts[a : b + 1], keep_prob, vectors, output, bias, mode,
                    window, lr, offsets, codes, paths, alias_prob, alias, log_kq, negative,
                    int(seeds[k]), bool(compute_loss), stop,
                ))
                submitted += int(starts[b] - starts[a])
            if not pending:
                break
            timeout = None if budget is None else max(budget - (time.perf_counter() - t0), 0.0)
            finished, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            if budget is not None and time.perf_counter() - t0 >= budget:
                stop[0] = 1
                exhausted = True
            for fut in finished:
                w, n_pairs, loss = fut.result()
                done_words += int(w)
                pairs += int(n_pairs)
                loss_sum += float(loss)
                if bar is not None:
                    bar.update(int(w))
                    if compute_loss or layer in ("softmax", "sampled"):
                        bar.set_postfix(loss=f"{loss_sum / max(pairs, 1):.3f}", refresh=False)
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    stats = {
        "words": float(done_words),
        "pairs": float(pairs),
        "seconds": seconds,
        "words_per_second": done_words / seconds if seconds > 0 else 0.0,
        "loss": loss_sum / pairs if pairs and (compute_loss or layer in ("softmax", "sampled"))
        else float("nan"),
    }
    return SkipGramModel(vocab, vectors, output, bias, layer, window, tree, stats)


# --------------------------------------------------------------------------- CLI
def register_cli(subparsers: Any) -> None:
    """Add ``train-embeddings CORPUS`` to the ``softargmax`` command line."""
    import argparse

    p = subparsers.add_parser(
        "train-embeddings",
        help="train skip-gram word vectors with a large-output layer",
        description="Train skip-gram word vectors on a text file (one sentence a line) and "
        "save them in word2vec's text format.",
    )
    p.add_argument("corpus", metavar="CORPUS", help="text file, one sentence per line")
    p.add_argument("-o", "--output", default="vectors.txt", help="output file (word2vec text format)")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--output-layer", choices=OUTPUT_LAYERS, default="negative")
    p.add_argument("--negative", type=int, default=5, help="samples per pair (sampled, nce, negative)")
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--sample", type=float, default=1e-3, help="subsampling threshold (0: off)")
    p.add_argument("--alpha", type=float, default=0.025)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show a progress bar with words/second")
    p.set_defaults(func=run)


def run(args: Any) -> int:
    model = train_skipgram(
        args.corpus, dim=args.dim, window=args.window, epochs=args.epochs,
        output_layer=args.output_layer, negative=args.negative, min_count=args.min_count,
        sample=args.sample, alpha=args.alpha, threads=args.threads, rng=args.seed,
        progress=args.progress,
    )
    model.save_word2vec_format(args.output)
    s = model.stats
    print(
        f"{len(model.vocab)} words x {model.vectors.shape[1]} dims -> {args.output}; "
        f"{int(s['words'])} words in {s['seconds']:.1f} s ({s['words_per_second']:.0f} words/s)"
        + (f", mean loss {s['loss']:.4f}" if np.isfinite(s["loss"]) else "")
    )
    return 0
