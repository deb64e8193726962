"""Evaluation of word vectors and output layers: word analogies and held-out likelihood."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._common import as_positive_int

__all__ = [
    "AnalogyResult",
    "analogy_accuracy",
    "context_pairs",
    "gensim_questions_words",
    "heldout_log_likelihood",
    "load_analogies",
]


def gensim_questions_words() -> Path:
    """Path of ``questions-words.txt`` (19,544 analogies) shipped in gensim's wheel.

    Found without importing gensim; an OSError if gensim is not installed.

    Examples
    --------
    >>> from softargmax.large_output.evaluate import gensim_questions_words
    >>> gensim_questions_words().name  # doctest: +SKIP
    'questions-words.txt'
    """
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        msg = "gensim is not installed: its test data holds questions-words.txt"
        raise OSError(msg)
    path = Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data" / "questions-words.txt"
    if not path.is_file():
        msg = f"questions-words.txt not found at {path}"
        raise OSError(msg)
    return path


def load_analogies(path: str | os.PathLike[str] | None = None) -> list[tuple[str, list[tuple[str, ...]]]]:
    """Read an analogy file in word2vec's format: ``: section`` lines, then ``a b c d`` lines.

    Words are lowercased. Returns ``[(section, [(a, b, c, d), ...]), ...]``; the default
    is gensim's file.

    Examples
    --------
    >>> from softargmax.large_output.evaluate import load_analogies
    >>> sections = load_analogies()  # doctest: +SKIP
    >>> sections[0][0], sections[0][1][0]  # doctest: +SKIP
    ('capital-common-countries', ('athens', 'greece', 'baghdad', 'iraq'))
    """
    p = gensim_questions_words() if path is None else Path(path)
    sections: list[tuple[str, list[tuple[str, ...]]]] = []
    with Path(p).open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(":"):
                sections.append((line[1:].strip(), []))
                continue
            words = tuple(line.lower().split())
            if len(words) != 4 or not sections:
                msg = f"analogy file {str(p)!r} line {line_no}: expected ': section' or 4 words, got {line!r}"
                raise ValueError(msg)
            sections[-1][1].append(words)
    return sections


@dataclass
class AnalogyResult:
    """Accuracy of 3CosAdd analogies: overall and per section.

    ``accuracy`` is correct / evaluated; questions with a word outside the (restricted)
    vocabulary are skipped and counted in ``skipped``; ``sections`` maps each section
    to (correct, evaluated).

    Examples
    --------
    >>> from softargmax.large_output.evaluate import AnalogyResult
    >>> AnalogyResult(0.5, 1, 2, 0, {"s": (1, 2)}).accuracy
    0.5
    """

    accuracy: float
    correct: int
    evaluated: int
    skipped: int
    sections: dict[str, tuple[int, int]]


def analogy_accuracy(
    vectors: Any,
    words: list[str],
    analogies: Any = None,
    *,
    restrict_vocab: int = 30_000,
    batch_size: int = 256,
) -> AnalogyResult:
    """Word-analogy accuracy by 3CosAdd, the method of word2vec's ``compute-accuracy``.

    For a question "a is to b as c is to d", the answer is the word whose unit vector
    has the largest dot product with ``b̂ - â + ĉ`` among the ``restrict_vocab`` first
    words, excluding a, b and c; it is correct when it is d. Questions with a word outside
    those first words are skipped. The same rules as gensim's
    ``KeyedVectors.evaluate_word_analogies`` (case-insensitive, the most frequent first).

    Parameters
    ----------
    vectors : array_like, shape (V, D)
        Word vectors, rows in the order of ``words`` (most frequent first).
    words : list of str
    analogies : path or list, optional
        A file in word2vec's format or the output of :func:`load_analogies`; default
        gensim's ``questions-words.txt``.
    restrict_vocab : int
        Only the first words are candidates and may appear in a question.
    batch_size : int
        Questions scored at once.

    Returns
    -------
    AnalogyResult

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.large_output.evaluate import analogy_accuracy
    >>> words = ["king", "queen", "man", "woman", "apple"]
    >>> vec = np.array([[1, 1, 0], [1, -1, 0], [0, 1, 0.1], [0, -1, 0.1], [0, 0, 1.0]])
    >>> res = analogy_accuracy(vec, words, [("gender", [("man", "woman", "king", "queen")])])
    >>> res.accuracy, res.evaluated
    (1.0, 1)
    """
    vec = np.asarray(vectors, dtype=np.float64)
    if vec.ndim != 2 or vec.shape[0] != len(words):
        msg = f"vectors must have shape (len(words), D) = ({len(words)}, D), got {vec.shape}"
        raise ValueError(msg)
    restrict_vocab = as_positive_int(restrict_vocab, "restrict_vocab")
    batch_size = as_positive_int(batch_size, "batch_size")
    if analogies is None or isinstance(analogies, (str, os.PathLike)):
        analogies = load_analogies(analogies)
    n = min(restrict_vocab, len(words))
    index: dict[str, int] = {}
    for i in range(n - 1, -1, -1):  # the most frequent spelling wins, as in gensim
        index[words[i].lower()] = i
    norms = np.linalg.norm(vec[:n], axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(norms > 0, vec[:n] / norms, 0.0)
    sections: dict[str, tuple[int, int]] = {}
    total_correct = total_eval = skipped = 0
    for name, questions in analogies:
        q = []
        for a, b, c, d in questions:
            ids = [index.get(w.lower()) for w in (a, b, c, d)]
            if any(i is None for i in ids):
                skipped += 1
            else:
                q.append(ids)
        correct = 0
        qa = np.asarray(q, dtype=np.int64).reshape(-1, 4)
        for s in range(0, qa.shape[0], batch_size):
            blk = qa[s : s + batch_size]
            target = unit[blk[:, 1]] - unit[blk[:, 0]] + unit[blk[:, 2]]
            scores = target @ unit.T
            rows = np.arange(blk.shape[0])
            for j in range(3):
                scores[rows, blk[:, j]] = -np.inf
            correct += int(np.sum(np.argmax(scores, axis=1) == blk[:, 3]))
        sections[name] = (correct, qa.shape[0])
        total_correct += correct
        total_eval += qa.shape[0]
    acc = total_correct / total_eval if total_eval else 0.0
    return AnalogyResult(acc, total_correct, total_eval, skipped, sections)


def context_pairs(ids: np.ndarray, starts: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (input word, target word) pair within ``window`` of each other in each sentence.

    ``ids`` and ``starts`` are as :meth:`Vocabulary.encode` returns them. The input is the
    context word and the target the centre word, the orientation of the trainer.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.large_output.evaluate import context_pairs
    >>> x, y = context_pairs(np.array([7, 8, 9]), np.array([0, 3]), 1)
    >>> x.tolist(), y.tolist()
    ([8, 9, 7, 8], [7, 8, 8, 9])
    """
    window = as_positive_int(window, "window")
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for s in range(starts.shape[0] - 1):
        sent = ids[starts[s] : starts[s + 1]]
        for off in range(1, window + 1):
            if off >= sent.shape[0]:
                break
            xs += [sent[off:], sent[:-off]]
            ys += [sent[:-off], sent[off:]]
    if not xs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(xs).astype(np.int64), np.concatenate(ys).astype(np.int64)


def heldout_log_likelihood(
    model: Any,
    sentences: Iterable[list[str]],
    *,
    window: int | None = None,
    max_pairs: int | None = None,
    rng: Any = None,
    chunk: int = 2048,
) -> float:
    """Mean exact ``log p(centre word | context word)`` over held-out text, in nats per pair.

    Every pair within ``window`` (default: the model's) of the held-out sentences is
    scored with the model's full normalised distribution (:meth:`SkipGramModel.log_prob`:
    the full softmax over all V words, or the tree for hierarchical softmax), so models
    trained with different output layers are compared on one exact scale. Words outside
    the model's vocabulary are dropped first. With ``max_pairs``, a uniform random subset
    of that many pairs (drawn with ``rng``) is scored: the full softmax costs O(V D) a pair.

    Examples
    --------
    >>> from softargmax.large_output.skipgram import train_skipgram
    >>> from softargmax.large_output.evaluate import heldout_log_likelihood
    >>> text = [["a", "b", "c", "d"], ["a", "b", "d", "c"]] * 30
    >>> m0 = train_skipgram(text, dim=4, epochs=0, min_count=1, window=1, rng=0)
    >>> round(heldout_log_likelihood(m0, text[:2]), 4)  # untrained: uniform, -log 4
    -1.3863
    """
    ids, starts = model.vocab.encode(sentences)
    x, y = context_pairs(ids, starts, model.window if window is None else window)
    if x.shape[0] == 0:
        msg = "sentences must contain at least one pair of in-vocabulary words within the window"
        raise ValueError(msg)
    if max_pairs is not None and as_positive_int(max_pairs, "max_pairs") < x.shape[0]:
        pick = np.random.default_rng(rng).choice(x.shape[0], size=max_pairs, replace=False)
        x, y = x[pick], y[pick]
    total = 0.0
    for s in range(0, x.shape[0], chunk):
        total += float(np.sum(model.log_prob(x[s : s + chunk], y[s : s + chunk])))
    return total / x.shape[0]
