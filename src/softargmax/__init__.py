"""softargmax: the softmax function family, exact at the edges of floating point.

The public API is re-exported here; implementations live in the modules named in
``__all__``'s groups below.
"""

from .boltzmann import Boltzmann
from .core import hardmax, log_softmax, logsumexp, softmax, softmin
from .grad import log_softmax_vjp, softmax_jacobian, softmax_jvp, softmax_vjp
from .sampling import filter_logits, gumbel_max, gumbel_softmax, sample_logits
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
    # distributions and sampling
    "Boltzmann",
    "filter_logits",
    "gumbel_max",
    "gumbel_softmax",
    "sample_logits",
    # streaming
    "LogSumExpAccumulator",
    "log_softmax_chunked",
    "logsumexp_chunked",
    "softmax_chunked",
]
