"""The core functions on real data: softmax over the digits classifier's scores.

    python examples/core_tour.py

Fits nothing: it scores scikit-learn's bundled digits with a fixed linear map (class means),
then shows temperature, masking and the log-softmax / logsumexp identities on those scores.
"""

from __future__ import annotations

import numpy as np

import softargmax as sa


def main() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    means = np.stack([x[y == k].mean(axis=0) for k in range(10)])
    scores = -((x[:, None, :] - means[None]) ** 2).sum(axis=-1)  # (1797, 10)
    for t in (0.1, 1.0, 10.0):
        p = sa.softmax(scores, temperature=t)
        nll = -np.log(p[np.arange(len(y)), y]).mean()
        print(f"T = {t:>4}: accuracy {np.mean(p.argmax(1) == y):.3f}, mean NLL {nll:.3f}, "
              f"mean max-probability {p.max(1).mean():.3f}")
    lse = sa.logsumexp(scores, axis=1, keepdims=True)
    assert np.allclose(sa.log_softmax(scores), scores - lse)
    # Restrict each sample to the even digits only: excluded classes get exactly 0.
    even = np.arange(10) % 2 == 0
    p_even = sa.softmax(scores, where=even)
    print("mass on odd digits with where=even:", float(p_even[:, ~even].sum()))


if __name__ == "__main__":
    main()
