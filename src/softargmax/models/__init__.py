"""Models built on softmax, with scikit-learn conventions."""
