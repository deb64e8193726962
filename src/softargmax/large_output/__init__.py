"""Output layers for huge numbers of classes: hierarchical, sampled, NCE, negative sampling.

Also the skip-gram trainer that uses them (``train_skipgram``, ``softargmax
train-embeddings``) and its evaluation (word analogies, exact held-out likelihood).
"""

from .evaluate import (
    AnalogyResult,
    analogy_accuracy,
    context_pairs,
    gensim_questions_words,
    heldout_log_likelihood,
    load_analogies,
)
from .hierarchical import HierarchicalSoftmax
from .huffman import HuffmanTree
from .losses import (
    LossGrad,
    full_softmax_loss,
    nce_loss,
    negative_sampling_loss,
    sampled_softmax_loss,
)
from .samplers import (
    CandidateSample,
    LogUniformSampler,
    Sampler,
    UniformSampler,
    UnigramSampler,
)
from .skipgram import SkipGramModel, Vocabulary, iter_sentences, tokenize, train_skipgram

__all__ = [
    "AnalogyResult",
    "CandidateSample",
    "HierarchicalSoftmax",
    "HuffmanTree",
    "LogUniformSampler",
    "LossGrad",
    "Sampler",
    "SkipGramModel",
    "UniformSampler",
    "UnigramSampler",
    "Vocabulary",
    "analogy_accuracy",
    "context_pairs",
    "full_softmax_loss",
    "gensim_questions_words",
    "heldout_log_likelihood",
    "iter_sentences",
    "load_analogies",
    "nce_loss",
    "negative_sampling_loss",
    "sampled_softmax_loss",
    "tokenize",
    "train_skipgram",
]
