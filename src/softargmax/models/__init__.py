"""Models built on softmax, with scikit-learn conventions."""

from .policy import BoltzmannPolicy

__all__ = ["BoltzmannPolicy"]
