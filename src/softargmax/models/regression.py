"""Softmax (multinomial logistic) regression as a scikit-learn estimator.

:class:`SoftmaxRegression` minimises the L2-penalised, sample-weighted cross-entropy of
``softmax(X @ W.T + b)`` with L-BFGS (``scipy.optimize.minimize``). The objective and its
scaling are those of scikit-learn's multinomial :class:`~sklearn.linear_model.LogisticRegression`
with the ``lbfgs`` solver, so both reach the same optimum for the same ``C``.

This module needs scikit-learn (>= 1.6) and SciPy: ``pip install softargmax[sklearn]``.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from scipy import optimize
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..core import log_softmax
from ..losses import _weighted_rows

__all__ = ["SoftmaxRegression"]


def _softmax_cross_entropy_objective(
    params: np.ndarray,
    X: Any,
    y: np.ndarray,
    sample_weight: np.ndarray,
    l2: float,
    n_classes: int,
    fit_intercept: bool,
) -> tuple[float, np.ndarray]:
    """Value and gradient of the penalised mean cross-entropy of a linear softmax model.

    ``params`` holds ``W`` (``n_classes x n_features``, row-major) followed, with
    ``fit_intercept``, by ``b`` (``n_classes``). ``sample_weight`` must already be
    divided by its sum, so the value is

        sum_i s_i * (logsumexp(z_i) - z_i[y_i]) + l2 / 2 * ||W||^2,   z = X @ W.T + b,

    with ``l2 = 1 / (C * sum of the raw weights)``: scikit-learn's lbfgs objective for the
    multinomial ``LogisticRegression`` (the intercept is not penalised). The per-sample
    losses ``s_i CE_i`` and gradients ``s_i (p_i - onehot(y_i))`` come from one fused
    pass of the :func:`softargmax.cross_entropy` kernel (the sample weights take the
    place of its per-row weights; ``X``, ``y`` and the weights are validated once, in
    ``fit``), and the gradient is pushed through the linear layer.
    """
    n_features = X.shape[1]
    W = params[: n_classes * n_features].reshape(n_classes, n_features)
    Z = X @ W.T
    if fit_intercept:
        Z += params[n_classes * n_features :]
    losses, G = _weighted_rows(Z, y, sample_weight)
    value = float(np.sum(losses)) + 0.5 * l2 * float(np.vdot(W, W))
    grad_W = np.asarray(G.T @ X) + l2 * W
    if fit_intercept:
        return value, np.concatenate([grad_W.ravel(), G.sum(axis=0)])
    return value, grad_W.ravel()


def _check_params(est: SoftmaxRegression) -> None:
    C = est.C
    if isinstance(C, (bool, np.bool_)) or not isinstance(C, numbers.Real) or not C > 0:
        msg = f"C must be a real number > 0 (np.inf for no penalty), got {C!r}"
        raise ValueError(msg)
    it = est.max_iter
    if isinstance(it, (bool, np.bool_)) or not isinstance(it, numbers.Integral) or it < 1:
        msg = f"max_iter must be an integer >= 1, got {it!r}"
        raise ValueError(msg)
    tol = est.tol
    if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, numbers.Real) or not tol >= 0:
        msg = f"tol must be a real number >= 0, got {tol!r}"
        raise ValueError(msg)
    for name in ("fit_intercept", "verbose", "warm_start"):
        if not isinstance(getattr(est, name), (bool, np.bool_)):
            msg = f"{name} must be a bool, got {getattr(est, name)!r}"
            raise ValueError(msg)


class SoftmaxRegression(ClassifierMixin, BaseEstimator):
    r"""Multinomial logistic (softmax) regression, trained with L-BFGS.

    The model is ``P(y = k | x) = softmax(W x + b)_k``. Training minimises

    .. math::

        \frac{1}{S}\Big(\sum_i s_i\,\mathrm{CE}(W x_i + b,\ y_i)
        + \frac{1}{2C}\lVert W\rVert_F^2\Big), \qquad S = \sum_i s_i,

    with sample weights :math:`s_i` (1 by default) and the intercept not penalised:
    the objective of scikit-learn's :class:`~sklearn.linear_model.LogisticRegression`
    for more than two classes, which this estimator therefore matches for equal ``C``.

    Parameters
    ----------
    C : float, default=1.0
        Inverse L2 regularisation strength (> 0); ``np.inf`` for no penalty.
    fit_intercept : bool, default=True
        Whether to fit the (unpenalised) intercept ``b``.
    max_iter : int, default=100
        Maximum number of L-BFGS iterations.
    tol : float, default=1e-4
        Stop when the largest gradient component falls below ``tol`` (L-BFGS-B's
        ``gtol``), as scikit-learn does.
    warm_start : bool, default=False
        Start from the previous solution when refitting on the same classes.
    verbose : bool, default=False
        Show a progress bar (tqdm, on stderr) with the iteration and the loss.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The sorted class labels (any labels that :func:`numpy.unique` sorts: ints, strings).
    coef_ : ndarray of shape (n_classes, n_features) or (1, n_features)
        Weights ``W``. With two classes, as in scikit-learn, one row: the difference
        ``W[1] - W[0]``, so that ``decision_function`` is the log-odds of ``classes_[1]``.
    intercept_ : ndarray of shape (n_classes,) or (1,)
        Intercepts ``b`` (zeros without ``fit_intercept``); the difference for two classes.
    n_iter_ : ndarray of shape (1,)
        Number of L-BFGS iterations run.
    objective_ : float
        The objective above at the solution (scikit-learn's scaling).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Feature names, when ``X`` had string column names.

    See Also
    --------
    sklearn.linear_model.LogisticRegression : scikit-learn's estimator with the same
        objective for three or more classes.

    Notes
    -----
    The loss and its gradient are computed in one fused pass by :func:`softargmax.cross_entropy`
    (the gradient of the mean cross-entropy with respect to the logits is
    ``s_i (p_i - e_{y_i}) / S``); the computation is in float64. The L-BFGS options
    (``gtol=tol``, ``ftol=64 eps``, ``maxls=50``) are scikit-learn's, so both take
    essentially the same path to the optimum.

    With **two classes** the softmax parametrisation has two weight rows. Since the
    penalty is symmetric the optimum has ``W[0] = -W[1]``, and the model is a binomial
    logistic regression on ``v = W[1] - W[0]`` with penalty ``||v||^2 / (4C)``: it equals
    scikit-learn's binary ``LogisticRegression(C=2 * C)``.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from softargmax.models.regression import SoftmaxRegression
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SoftmaxRegression(C=1.0, max_iter=500).fit(X, y)
    >>> clf.coef_.shape, clf.intercept_.shape
    ((3, 4), (3,))
    >>> clf.predict(X[:3])
    array([0, 0, 0])
    >>> print(clf.predict_proba(X[:1]).round(3))
    [[0.982 0.018 0.   ]]
    >>> round(clf.score(X, y), 3)
    0.973

    String labels work as in scikit-learn:

    >>> names = load_iris().target_names[y]
    >>> SoftmaxRegression(max_iter=500).fit(X, names).predict(X[-1:])
    array(['virginica'], dtype='<U10')
    """

    # The fitted softmax weights (n_classes rows also for two classes) and intercepts.
    _W: np.ndarray
    _b: np.ndarray

    def __init__(
        self,
        C: float = 1.0,
        *,
        fit_intercept: bool = True,
        max_iter: int = 100,
        tol: float = 1e-4,
        warm_start: bool = False,
        verbose: bool = False,
    ) -> None:
        self.C = C
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.verbose = verbose

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SoftmaxRegression:
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; NaN or infinite values raise ``ValueError``.
        y : array-like of shape (n_samples,)
            Class labels; at least two distinct classes.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights, not all zero. A weight of 2 is the same as repeating
            the sample.

        Returns
        -------
        self : SoftmaxRegression
            The fitted estimator.
        """
        _check_params(self)
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64, order="C")
        check_classification_targets(y)
        classes, y_idx = np.unique(y, return_inverse=True)
        n_classes = len(classes)
        if n_classes < 2:
            msg = (
                f"y must contain samples of at least 2 classes to fit {type(self).__name__}; "
                f"got only one class: {classes[0]!r}"
            )
            raise ValueError(msg)
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        sw_sum = float(sw.sum())
        n_features = X.shape[1]
        n_params = n_classes * n_features + (n_classes if self.fit_intercept else 0)

        x0 = np.zeros(n_params)
        W_prev = getattr(self, "_W", None)
        if (
            self.warm_start
            and W_prev is not None
            and W_prev.shape == (n_classes, n_features)
            and np.array_equal(getattr(self, "classes_", ()), classes)
        ):
            x0[: n_classes * n_features] = W_prev.ravel()
            if self.fit_intercept:
                x0[n_classes * n_features :] = self._b

        args = (X, y_idx.astype(np.int64), sw / sw_sum, 1.0 / (self.C * sw_sum), n_classes,
                bool(self.fit_intercept))
        bar = None
        callback = None
        if self.verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.max_iter, desc=type(self).__name__, unit="it", leave=True)

            def callback(intermediate_result: optimize.OptimizeResult) -> None:
                bar.update(1)
                bar.set_postfix(loss=f"{intermediate_result.fun:.6g}", refresh=False)

        with np.errstate(over="ignore", under="ignore"):
            try:
                res = optimize.minimize(
                    _softmax_cross_entropy_objective,
                    x0,
                    args=args,
                    method="L-BFGS-B",
                    jac=True,
                    callback=callback,
                    options={
                        "maxiter": self.max_iter,
                        "maxls": 50,
                        "gtol": self.tol,
                        "ftol": 64 * np.finfo(float).eps,
                    },
                )
            finally:
                if bar is not None:
                    bar.close()
        if res.status != 0:  # as scikit-learn: the iteration limit or a failed line search
            reason = (
                f"in max_iter={self.max_iter} iterations" if res.status == 1 else f"({res.message})"
            )
            warnings.warn(
                f"{type(self).__name__}: L-BFGS did not converge {reason}; increase max_iter "
                "or scale the data.",
                ConvergenceWarning,
                stacklevel=2,
            )
        W = res.x[: n_classes * n_features].reshape(n_classes, n_features).copy()
        b = res.x[n_classes * n_features :].copy() if self.fit_intercept else np.zeros(n_classes)
        self._W, self._b = W, b
        self.classes_ = classes
        self.n_iter_ = np.array([res.nit], dtype=np.int32)
        self.objective_ = float(res.fun)
        if n_classes == 2:
            self.coef_ = (W[1] - W[0])[None, :]
            self.intercept_ = np.array([b[1] - b[0]])
        else:
            self.coef_ = W
            self.intercept_ = b
        return self

    # ------------------------------------------------------------------ predict
    def _logits(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)
        return np.asarray(X @ self._W.T) + self._b

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits ``X @ W.T + b`` (the log-odds of ``classes_[1]`` for two classes).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes), or (n_samples,) for two classes
        """
        Z = self._logits(X)
        return Z[:, 1] - Z[:, 0] if len(self.classes_) == 2 else Z

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log-probabilities ``log_softmax(X @ W.T + b)``, columns in ``classes_`` order.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return np.asarray(log_softmax(self._logits(X), axis=1))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``softmax(X @ W.T + b)``, columns in ``classes_`` order.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class (the first in ``classes_`` order on exact ties).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        Z = self._logits(X)
        return self.classes_[np.argmax(Z, axis=1)]


def demo_section() -> str:
    """A short text tour: softmax regression on scikit-learn's digits.

    Returns
    -------
    str
        A few lines comparing :class:`SoftmaxRegression` with scikit-learn's
        ``LogisticRegression`` (same objective, same C) on standardised digits.

    Examples
    --------
    >>> from softargmax.models.regression import demo_section
    >>> print(demo_section())  # doctest: +ELLIPSIS
    SoftmaxRegression on scikit-learn's digits ...
    """
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
    opts: dict[str, Any] = {"C": 0.1, "tol": 1e-6, "max_iter": 1000}
    # Tiny matrices: a multithreaded BLAS only adds overhead (a lot on a busy machine).
    with threadpool_limits(limits=1, user_api="blas"):
        ours = SoftmaxRegression(**opts).fit(X_tr, y_tr)
        ref = LogisticRegression(**opts).fit(X_tr, y_tr)
    agree = float(np.mean(ours.predict(X_te) == ref.predict(X_te)))
    return "\n".join([
        f"SoftmaxRegression on scikit-learn's digits ({len(y_tr)} train / {len(y_te)} test, "
        f"10 classes, C={opts['C']})",
        f"  softargmax: test accuracy {ours.score(X_te, y_te):.4f}, "
        f"{int(ours.n_iter_[0])} L-BFGS iterations",
        f"  sklearn   : test accuracy {ref.score(X_te, y_te):.4f}, "
        f"{int(ref.n_iter_[0])} L-BFGS iterations (LogisticRegression, same objective)",
        f"  same predictions on {100 * agree:.1f}% of the test set; "
        f"objective {ours.objective_:.8f}",
    ])
