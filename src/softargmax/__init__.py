"""softargmax: the softmax function family, exact at the edges of floating point.

The public API is re-exported here; implementations live in the modules named in
``__all__``'s groups below.
"""

from .attention import (
    attention,
    attention_vjp,
    linear_attention,
    linear_attention_vjp,
    merge_attention,
)
from .boltzmann import Boltzmann
from .core import hardmax, log_softmax, logsumexp, softmax, softmin
from .grad import log_softmax_vjp, softmax_jacobian, softmax_jvp, softmax_vjp
from .losses import cross_entropy, linear_cross_entropy, nll_loss
from .sampling import filter_logits, gumbel_max, gumbel_softmax, sample_logits
from .sparse import (
    entmax15,
    entmax15_jvp,
    entmax15_loss,
    entmax15_vjp,
    entmax_bisect,
    entmax_bisect_jvp,
    entmax_bisect_loss,
    entmax_bisect_vjp,
    sparsemax,
    sparsemax_jvp,
    sparsemax_loss,
    sparsemax_vjp,
)
from .streaming import (
    LogSumExpAccumulator,
    log_softmax_chunked,
    logsumexp_chunked,
    softmax_chunked,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # core
    "hardmax",
    "log_softmax",
    "logsumexp",
    "softmax",
    "softmin",
    # grad
    "log_softmax_vjp",
    "softmax_jacobian",
    "softmax_jvp",
    "softmax_vjp",
    # losses
    "cross_entropy",
    "linear_cross_entropy",
    "nll_loss",
    # attention
    "attention",
    "attention_vjp",
    "linear_attention",
    "linear_attention_vjp",
    "merge_attention",
    # distributions and sampling
    "Boltzmann",
    "filter_logits",
    "gumbel_max",
    "gumbel_softmax",
    "sample_logits",
    # sparse
    "entmax15",
    "entmax15_jvp",
    "entmax15_loss",
    "entmax15_vjp",
    "entmax_bisect",
    "entmax_bisect_jvp",
    "entmax_bisect_loss",
    "entmax_bisect_vjp",
    "sparsemax",
    "sparsemax_jvp",
    "sparsemax_loss",
    "sparsemax_vjp",
    # streaming
    "LogSumExpAccumulator",
    "log_softmax_chunked",
    "logsumexp_chunked",
    "softmax_chunked",
]
