"""Skip-gram trainer, its numba kernel, evaluation and CLI (softargmax.large_output)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from softargmax.large_output.evaluate import (
    analogy_accuracy,
    context_pairs,
    heldout_log_likelihood,
    load_analogies,
)
from softargmax.large_output.hierarchical import HierarchicalSoftmax
from softargmax.large_output.huffman import HuffmanTree
from softargmax.large_output.losses import (
    full_softmax_loss,
    nce_loss,
    negative_sampling_loss,
    sampled_softmax_loss,
)
from softargmax.large_output.samplers import CandidateSample, UnigramSampler
from softargmax.large_output.skipgram import (
    OUTPUT_LAYERS,
    Vocabulary,
    register_cli,
    tokenize,
    train_skipgram,
)


def topic_corpus(n_sent, seed):
    """Sentences from 4 topics of 8 words each, mixed with Zipfian function words."""
    rng = np.random.default_rng(seed)
    topics = [[f"t{k}w{i}" for i in range(8)] for k in range(4)]
    func = [f"f{i}" for i in range(10)]
    pf = 1.0 / np.arange(1, 11)
    pf /= pf.sum()
    out = []
    for _ in range(n_sent):
        k = rng.integers(4)
        s = [rng.choice(topics[k]) if rng.random() < 0.6 else rng.choice(func, p=pf)
             for _ in range(12)]
        out.append([str(w) for w in s])
    return out


TRAIN = topic_corpus(400, 0)
HELDOUT = topic_corpus(60, 1)


# ----------------------------------------------------------------------------- kernel
def run_kernel(mode_name, syn0, syn1, bias, sent, alpha, tree=None, alias=None, log_kq=None, neg=3):
    from softargmax._kernels import skipgram as K

    mode = {"softmax": K.SOFTMAX, "hs": K.HS, "sampled": K.SAMPLED, "nce": K.NCE,
            "negative": K.NEGATIVE}[mode_name]
    v = syn0.shape[0]
    offsets, codes, paths = ((tree.offsets.copy(), tree.codes.copy(), tree.paths.copy()) if tree
                             else (np.zeros(1, np.int64), np.zeros(0, np.uint8), np.zeros(0, np.int32)))
    alias_prob = np.zeros(v) if alias is not None else np.ones(v)
    alias_arr = np.full(v, alias if alias is not None else 0, dtype=np.int64)
    if alias is None:
        alias_arr = np.arange(v, dtype=np.int64)
    log_kq = np.zeros(v) if log_kq is None else log_kq
    ids = np.asarray(sent, dtype=np.int32)
    starts = np.array([0, len(sent)], dtype=np.int64)
    return K.train_job(ids, starts, np.ones(v), syn0, syn1, bias, mode, 1, alpha, offsets,
                       codes, paths, alias_prob, alias_arr, log_kq, neg, 7, True,
                       np.zeros(1, np.uint8))


@pytest.mark.parametrize("layer", OUTPUT_LAYERS)
def test_kernel_matches_library_losses_and_gradients(layer):
    """One sentence [a, b], window 1: pairs (input b, target a) and (input a, target b)."""
    rng = np.random.default_rng(3)
    v, d, a, b, k, neg = 6, 4, 1, 4, 2, 3
    counts = np.array([30, 20, 10, 5, 4, 2])
    tree = HuffmanTree.from_counts(counts) if layer == "hs" else None
    syn0 = rng.normal(size=(v, d)).astype(np.float32)
    syn1 = rng.normal(size=(v - 1 if tree else v, d)).astype(np.float32)
    bias = (rng.normal(size=v) if layer in ("softmax", "sampled", "nce") else np.zeros(v)).astype(np.float32)
    q = counts / counts.sum()
    log_kq = np.log(neg * q)
    # Deterministic "draws": the alias table sends every column to class k.
    kw = {"tree": tree, "alias": k, "log_kq": log_kq, "neg": neg}
    h = syn0[[b, a]].astype(np.float64)
    W = syn1.astype(np.float64)
    bb = bias.astype(np.float64)
    y = np.array([a, b])
    if layer == "hs":
        hs = HierarchicalSoftmax(tree, d)
        hs.weight = W
        ref = hs.loss(h, y, reduction="sum", return_grad=True)
    else:
        draw = CandidateSample(np.full(neg, k), np.full(neg, neg * q[k]), neg, False)
        lkw = {"num_sampled": neg, "sampler": UnigramSampler(counts, power=1.0), "sampled": draw,
               "reduction": "sum", "return_grad": True}
        ref = {
            "softmax": lambda: full_softmax_loss(h, W, bb, y, reduction="sum", return_grad=True),
            "sampled": lambda: sampled_softmax_loss(h, W, bb, y, **lkw),
            "nce": lambda: nce_loss(h, W, bb, y, remove_accidental_hits=True, **lkw),
            "negative": lambda: negative_sampling_loss(h, W, None, y, **lkw),
        }[layer]()
    # alpha = 0: the kernel's summed loss is exactly the library's.
    words, pairs, loss = run_kernel(layer, syn0.copy(), syn1.copy(), bias.copy(), [a, b], 0.0, **kw)
    assert (words, pairs) == (2, 2)
    assert loss == pytest.approx(ref.loss, rel=1e-5)
    # A small step: the updates are -alpha times the library's gradients.
    alpha = 1e-3  # float32 storage: compare above its rounding (~1e-7 absolute)
    s0, s1, bi = syn0.copy(), syn1.copy(), bias.copy()
    run_kernel(layer, s0, s1, bi, [a, b], alpha, **kw)
    d0 = (s0 - syn0).astype(np.float64)
    np.testing.assert_allclose(d0[[b, a]], -alpha * ref.dh, rtol=2e-2, atol=1e-6)
    d1 = np.zeros_like(W)
    d1[ref.rows] = ref.dW
    np.testing.assert_allclose(s1 - syn1, -alpha * d1, rtol=2e-2, atol=1e-6)
    if ref.db is not None:
        dbias = np.zeros(v)
        dbias[ref.rows] = ref.db
        np.testing.assert_allclose(bi - bias, -alpha * dbias, rtol=2e-2, atol=1e-6)
    else:
        np.testing.assert_array_equal(bi, bias)


# ----------------------------------------------------------------------------- trainer
def test_vocabulary_and_tokenize():
    assert tokenize("Thou shalt NOT; o'er 3 hills") == ["thou", "shalt", "not", "o'er", "hills"]
    v = Vocabulary.build([["b", "a", "b"], ["c", "a", "d"]], min_count=1)
    assert v.words == ["a", "b", "c", "d"] and v.counts.tolist() == [2, 2, 1, 1]
    ids, starts = v.encode([["a", "zzz", "d"], ["zzz"], ["c"]])
    assert ids.tolist() == [0, 3, 2] and starts.tolist() == [0, 2, 3]


def test_context_pairs():
    ids = np.array([0, 1, 2, 3, 4], dtype=np.int32)
    x, y = context_pairs(ids, np.array([0, 3, 5]), 2)
    got = sorted(zip(x.tolist(), y.tolist(), strict=True))
    want = sorted([(1, 0), (0, 1), (2, 1), (1, 2), (2, 0), (0, 2), (4, 3), (3, 4)])
    assert got == want


@pytest.mark.parametrize("layer", OUTPUT_LAYERS)
def test_training_improves_heldout_likelihood(layer):
    kw = {"dim": 16, "window": 3, "min_count": 1, "output_layer": layer, "threads": 1, "rng": 5,
          "negative": 5, "sample": 0.0}
    untrained = train_skipgram(TRAIN, epochs=0, **kw)
    trained = train_skipgram(TRAIN, epochs=3, alpha=0.05, **kw)
    ll0 = heldout_log_likelihood(untrained, HELDOUT)
    ll1 = heldout_log_likelihood(trained, HELDOUT)
    sub = heldout_log_likelihood(trained, HELDOUT, max_pairs=2000, rng=0)
    assert sub == pytest.approx(ll1, abs=0.15)  # a random subset of the pairs
    assert np.isfinite(ll1) and trained.stats["pairs"] > 0
    assert ll1 > ll0 + 0.1, (ll0, ll1)
    # The model's distribution is normalised, whatever the layer.
    v = len(trained.vocab)
    lp = trained.log_prob(np.full(v, 3), np.arange(v))
    assert np.exp(lp).sum() == pytest.approx(1.0, rel=1e-9)


def test_training_reproducible_single_thread_and_two_threads_run():
    kw = {"dim": 8, "epochs": 1, "min_count": 1, "output_layer": "negative", "rng": 2,
          "batch_words": 500}
    a = train_skipgram(TRAIN, threads=1, **kw)
    b = train_skipgram(TRAIN, threads=1, **kw)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    c = train_skipgram(TRAIN, threads=2, **kw)
    assert c.stats["words"] == a.stats["words"] == sum(map(len, TRAIN))
    assert np.all(np.isfinite(c.vectors))


def test_subsampling_drops_frequent_words():
    kw = {"dim": 8, "epochs": 1, "min_count": 1, "threads": 1, "rng": 0}
    full = train_skipgram(TRAIN, sample=0.0, **kw)
    sub = train_skipgram(TRAIN, sample=1e-3, **kw)
    assert sub.stats["pairs"] < 0.9 * full.stats["pairs"]


def test_time_budget_stops_training():
    m = train_skipgram(TRAIN * 20, dim=8, epochs=50, min_count=1, threads=1, rng=0,
                       batch_words=200, max_seconds=0.3)
    assert m.stats["words"] < 50 * sum(map(len, TRAIN * 20))
    # One huge job of the O(V) softmax is cut short between sentences.
    rng = np.random.default_rng(0)
    sents = [[f"w{i}" for i in rng.integers(0, 3000, 20)] for _ in range(2000)]
    big = train_skipgram(sents, dim=64, epochs=1, min_count=1, threads=2, rng=0,
                         output_layer="softmax", batch_words=10**6, max_seconds=0.5)
    assert big.stats["seconds"] < 5.0 and 0 < big.stats["words"] < 40_000


def test_word2vec_format_loads_in_gensim(tmp_path):
    gensim = pytest.importorskip("gensim")
    m = train_skipgram(TRAIN, dim=6, epochs=1, min_count=1, threads=1, rng=0)
    path = tmp_path / "vec.txt"
    m.save_word2vec_format(path)
    kv = gensim.models.KeyedVectors.load_word2vec_format(str(path), binary=False)
    assert kv.index_to_key == m.vocab.words
    np.testing.assert_allclose(kv.vectors, m.vectors, rtol=1e-5, atol=1e-7)


def test_trainer_errors(tmp_path):
    with pytest.raises(ValueError, match="output_layer"):
        train_skipgram(TRAIN, output_layer="full")
    with pytest.raises(ValueError, match="at least 2 words"):
        train_skipgram([["a", "b"]], min_count=2)
    with pytest.raises(OSError, match="corpus"):
        train_skipgram(tmp_path / "missing.txt")
    with pytest.raises(TypeError, match="iterator"):
        train_skipgram(iter(TRAIN))
    with pytest.raises(ValueError, match="alpha"):
        train_skipgram(TRAIN, alpha=0.0)
    with pytest.raises(ValueError, match="dim"):
        train_skipgram(TRAIN, dim=0)


def test_cli_train_embeddings(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    letters = str.maketrans("0123456789", "abcdefghij")  # the tokeniser keeps letters only
    text = "\n".join(" ".join(s).translate(letters) for s in TRAIN[:200])
    corpus.write_text(text + "\n", encoding="utf-8")
    parser = argparse.ArgumentParser(prog="softargmax")
    register_cli(parser.add_subparsers(dest="command"))
    out = tmp_path / "v.txt"
    args = parser.parse_args(["train-embeddings", str(corpus), "--output", str(out), "--dim", "5",
                              "--epochs", "1", "--output-layer", "hs", "--min-count", "1",
                              "--threads", "1", "--no-progress"])
    assert args.func(args) == 0
    header = out.read_text().splitlines()[0].split()
    assert header[1] == "5" and int(header[0]) > 30
    assert "words/s" in capsys.readouterr().out
    bad = parser.parse_args(["train-embeddings", str(tmp_path / "nope.txt"), "--no-progress"])
    with pytest.raises(OSError, match="corpus must be a readable"):
        bad.func(bad)


# ----------------------------------------------------------------------------- analogies
def test_analogy_accuracy_matches_gensim(tmp_path):
    gensim = pytest.importorskip("gensim")
    sections = load_analogies()
    assert sum(len(q) for _, q in sections) == 19544
    # Vectors that solve many of the first two sections: x(d) - x(c) ~ x(b) - x(a) + noise.
    rng = np.random.default_rng(0)
    words: list[str] = []
    for _, qs in sections[:2]:
        for q in qs:
            words += [w for w in q if w not in words]
    vec = {w: rng.normal(size=20) for w in words}
    for _, qs in sections[:2]:
        for a, b, _, _ in qs:
            vec[b] = vec[a] + np.ones(20) * 0.7 + 1.0 * rng.normal(size=20)
    words = words[::-1] + ["unrelated"]
    mat = np.stack([vec.get(w, rng.normal(size=20)) for w in words]).astype(np.float32)
    ours = analogy_accuracy(mat, words, restrict_vocab=len(words) - 5)
    kv = gensim.models.KeyedVectors(20)
    kv.add_vectors(words, mat)
    score, secs = kv.evaluate_word_analogies(str(_questions()), restrict_vocab=len(words) - 5)
    total = secs[-1]
    assert 0.05 < ours.accuracy < 0.95
    assert ours.correct == len(total["correct"])
    assert ours.evaluated == len(total["correct"]) + len(total["incorrect"])
    assert ours.accuracy == pytest.approx(score)


def _questions():
    from softargmax.large_output.evaluate import gensim_questions_words

    return gensim_questions_words()


def test_analogy_file_errors(tmp_path):
    bad = tmp_path / "q.txt"
    bad.write_text(": s\na b c\n")
    with pytest.raises(ValueError, match="line 2"):
        load_analogies(bad)
    with pytest.raises(ValueError, match="vectors must have shape"):
        analogy_accuracy(np.ones((2, 3)), ["a"], [])
