"""SoftmaxRegression: scikit-learn's estimator checks, agreement with LogisticRegression
on digits, the objective against torch autograd, sample weights, labels and bad input."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import logsumexp
from sklearn.datasets import load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from softargmax.models.regression import (
    SoftmaxRegression,
    _softmax_cross_entropy_objective,
    demo_section,
)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # The problems here are tiny: on a shared 2-core machine a multithreaded BLAS only
    # adds contention (and it changes nothing in the results).
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def reference_objective(W, b, X, y, C, sample_weight=None):
    """sklearn's lbfgs objective, written independently with scipy's logsumexp."""
    s = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
    Z = X @ W.T + b
    ce = logsumexp(Z, axis=1) - Z[np.arange(len(y)), y]
    return (s @ ce + 0.5 / C * np.sum(W * W)) / s.sum()


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X, y


# --------------------------------------------------------------------------- sklearn checks
@parametrize_with_checks([SoftmaxRegression(max_iter=1000)])
def test_sklearn_estimator_checks(estimator, check):
    # max_iter=1000: one check fits unscaled iris, which L-BFGS (ours as scikit-learn's)
    # does not finish in the default 100 iterations; the ConvergenceWarning would fail it.
    check(estimator)


# --------------------------------------------------------------------------- agreement
@pytest.mark.parametrize("C", [1.0, 0.1])
@pytest.mark.parametrize("scaling", ["unit", "standard"])
def test_same_optimum_as_logistic_regression_on_digits(digits, C, scaling):
    X, y = digits
    X = X / 16.0 if scaling == "unit" else StandardScaler().fit_transform(X)
    opts = {"C": C, "tol": 1e-8, "max_iter": 2000}
    ours = SoftmaxRegression(**opts).fit(X, y)
    ref = LogisticRegression(**opts).fit(X, y)
    f_ours = reference_objective(ours.coef_, ours.intercept_, X, y, C)
    f_ref = reference_objective(ref.coef_, ref.intercept_, X, y, C)
    assert abs(f_ours - f_ref) <= 1e-6 * abs(f_ref)
    assert f_ours <= f_ref * (1 + 1e-9)
    assert_allclose(ours.objective_, f_ours, rtol=1e-12)
    assert_array_equal(ours.predict(X), ref.predict(X))
    assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-5)
    assert_allclose(ours.coef_, ref.coef_, atol=1e-3 * np.abs(ref.coef_).max())
    assert_array_equal(ours.classes_, ref.classes_)
    # The same options give the same L-BFGS path: the iteration counts match closely.
    assert abs(int(ours.n_iter_[0]) - int(ref.n_iter_[0])) <= 0.05 * int(ref.n_iter_[0]) + 2


def test_sample_weights_same_optimum_as_logistic_regression(digits):
    X, y = digits
    X = X[:600] / 16.0
    y = y[:600]
    w = np.random.default_rng(0).uniform(0.0, 3.0, size=len(y))
    opts = {"C": 0.5, "tol": 1e-9, "max_iter": 2000}
    ours = SoftmaxRegression(**opts).fit(X, y, sample_weight=w)
    ref = LogisticRegression(**opts).fit(X, y, sample_weight=w)
    f_ours = reference_objective(ours.coef_, ours.intercept_, X, y, 0.5, w)
    f_ref = reference_objective(ref.coef_, ref.intercept_, X, y, 0.5, w)
    assert abs(f_ours - f_ref) <= 1e-7 * f_ref
    assert_array_equal(ours.predict(X), ref.predict(X))


def test_binary_is_logistic_regression_with_twice_c(digits):
    X, y = digits
    keep = (y == 3) | (y == 8)
    X, y = X[keep] / 16.0, y[keep]
    ours = SoftmaxRegression(C=0.05, tol=1e-10, max_iter=2000).fit(X, y)
    ref = LogisticRegression(C=0.1, tol=1e-10, max_iter=2000).fit(X, y)
    assert ours.coef_.shape == ref.coef_.shape == (1, 64)
    assert_allclose(ours.coef_, ref.coef_, atol=1e-5)
    assert_allclose(ours.intercept_, ref.intercept_, atol=1e-5)

    def binomial_objective(v, c):  # sklearn's binary objective at C = 0.1
        z = X @ v[0] + c[0]
        t = np.where(y == 8, 1.0, -1.0)
        return np.mean(np.logaddexp(0.0, -t * z)) + 0.5 / (0.1 * len(y)) * v @ v.T

    f_ours = binomial_objective(ours.coef_, ours.intercept_)
    f_ref = binomial_objective(ref.coef_, ref.intercept_)
    assert abs(f_ours - f_ref) <= 1e-9 * f_ref
    assert_allclose(ours.objective_, f_ours, rtol=1e-9)
    d = ours.decision_function(X)
    assert d.shape == (len(y),)
    assert_allclose(ours.predict_proba(X)[:, 1], 1 / (1 + np.exp(-d)), rtol=1e-12)
    assert_array_equal(ours.predict(X), np.where(d > 0, 8, 3))
    # At the optimum the two softmax rows are opposite (the penalty is symmetric).
    assert_allclose(ours._W[0], -ours._W[1], atol=1e-8)


def test_no_intercept_and_no_penalty():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    ours = SoftmaxRegression(C=0.3, fit_intercept=False, tol=1e-10, max_iter=2000).fit(X, y)
    ref = LogisticRegression(C=0.3, fit_intercept=False, tol=1e-10, max_iter=2000).fit(X, y)
    assert_array_equal(ours.intercept_, np.zeros(3))
    assert_allclose(ours.coef_, ref.coef_, atol=1e-6)
    # C = inf: no penalty. Iris is not separable, so the optimum exists.
    free = SoftmaxRegression(C=np.inf, tol=1e-9, max_iter=5000).fit(X, y)
    W, b = free._W, free._b
    Z = X @ W.T + b
    P = np.exp(Z - logsumexp(Z, axis=1, keepdims=True))
    Y = np.eye(3)[y]
    assert np.abs((P - Y).T @ X).max() / len(y) < 1e-7  # first-order condition


# --------------------------------------------------------------------------- the objective
def _torch_objective(params, X, y, s, l2, k, fit_intercept):
    import torch

    F = X.shape[1]
    p = torch.tensor(params, dtype=torch.float64, requires_grad=True)
    W = p[: k * F].reshape(k, F)
    Z = torch.tensor(X) @ W.T
    if fit_intercept:
        Z = Z + p[k * F :]
    ce = torch.nn.functional.cross_entropy(Z, torch.tensor(y), reduction="none")
    f = (torch.tensor(s) * ce).sum() + 0.5 * l2 * (W * W).sum()
    f.backward()
    return float(f.detach()), p.grad.numpy()


@settings(max_examples=30)
@given(
    n=st.integers(1, 30),
    F=st.integers(1, 6),
    k=st.integers(2, 5),
    fit_intercept=st.booleans(),
    magnitude=st.sampled_from([1e-3, 1.0, 30.0, 300.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_objective_value_and_gradient_match_torch(n, F, k, fit_intercept, magnitude, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, F)) * magnitude
    y = rng.integers(0, k, size=n)
    s = rng.uniform(0, 2, size=n)
    s /= s.sum()
    params = rng.normal(size=k * F + (k if fit_intercept else 0))
    l2 = float(rng.uniform(0, 1))
    f, g = _softmax_cross_entropy_objective(params, X, y, s, l2, k, fit_intercept)
    f_t, g_t = _torch_objective(params, X, y, s, l2, k, fit_intercept)
    assert np.isfinite(f) and np.isfinite(g).all()
    assert_allclose(f, f_t, rtol=1e-10, atol=1e-12)
    assert_allclose(g, g_t, rtol=1e-9, atol=1e-12 * max(1.0, magnitude))


def test_objective_gradient_finite_differences_and_sparse():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 4))
    X[X < 0.3] = 0.0
    y = rng.integers(0, 3, size=20)
    s = np.full(20, 1 / 20)
    params = rng.normal(size=15)
    f, g = _softmax_cross_entropy_objective(params, X, y, s, 0.1, 3, True)
    h = 1e-6
    fd = np.array([
        (_softmax_cross_entropy_objective(params + h * e, X, y, s, 0.1, 3, True)[0]
         - _softmax_cross_entropy_objective(params - h * e, X, y, s, 0.1, 3, True)[0]) / (2 * h)
        for e in np.eye(15)
    ])
    assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    f_sp, g_sp = _softmax_cross_entropy_objective(params, sp.csr_matrix(X), y, s, 0.1, 3, True)
    assert_allclose(f_sp, f, rtol=1e-14)
    assert_allclose(g_sp, g, rtol=1e-13, atol=1e-15)


def test_objective_is_finite_for_huge_logits():
    X = np.array([[1e200, -1e200], [-1e200, 1e200]])
    f, g = _softmax_cross_entropy_objective(
        np.array([1.0, 0.0, 0.0, 1.0]), X, np.array([0, 0]), np.array([0.5, 0.5]), 0.0, 2, False
    )
    # Sample 1 has logit gap 2e200 against its label: loss 1e200, gradient finite.
    assert f == pytest.approx(1e200)
    assert np.isfinite(g).all()


# --------------------------------------------------------------------------- fit behaviour
def test_fit_random_problems_reach_logistic_regression_objective():
    rng = np.random.default_rng(7)
    for trial in range(6):
        n, F, k = 40 + 10 * trial, 3 + trial, 3 + trial % 3
        X = rng.normal(size=(n, F)) * rng.uniform(0.1, 5, size=F)
        y = rng.integers(0, k, size=n)
        y[:k] = np.arange(k)
        C = float(10 ** rng.uniform(-2, 2))
        ours = SoftmaxRegression(C=C, tol=1e-10, max_iter=5000).fit(X, y)
        ref = LogisticRegression(C=C, tol=1e-10, max_iter=5000).fit(X, y)
        f_ours = reference_objective(ours.coef_, ours.intercept_, X, y, C)
        f_ref = reference_objective(ref.coef_, ref.intercept_, X, y, C)
        assert abs(f_ours - f_ref) <= 1e-8 * f_ref, (trial, f_ours, f_ref)


def test_integer_weights_equal_repetition_and_zero_weights_equal_removal():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    rng = np.random.default_rng(3)
    w = rng.integers(0, 4, size=len(y))
    opts = {"C": 0.7, "tol": 1e-10, "max_iter": 2000}
    weighted = SoftmaxRegression(**opts).fit(X, y, sample_weight=w)
    repeated = SoftmaxRegression(**opts).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert_allclose(weighted.coef_, repeated.coef_, atol=1e-6)
    assert_allclose(weighted.intercept_, repeated.intercept_, atol=1e-6)
    # A constant weight s scales the data term against the penalty: it is C -> s * C,
    # sklearn's convention (the penalty is not multiplied by the weights).
    a = SoftmaxRegression(**opts).fit(X, y, sample_weight=5.0)
    b = SoftmaxRegression(**{**opts, "C": 3.5}).fit(X, y)
    assert_allclose(a.coef_, b.coef_, atol=1e-6)
    assert a.objective_ == pytest.approx(
        reference_objective(a.coef_, a.intercept_, X, y, 0.7, np.full(len(y), 5.0)), rel=1e-12
    )
    # Zero weights: the same as leaving the samples out.
    w0 = (np.arange(len(y)) % 3 != 0).astype(float)
    dropped = SoftmaxRegression(**opts).fit(X[w0 > 0], y[w0 > 0])
    zeroed = SoftmaxRegression(**opts).fit(X, y, sample_weight=w0)
    assert_allclose(zeroed.coef_, dropped.coef_, atol=1e-6)


def test_string_labels_as_sklearn(digits):
    X, y = digits
    X, y = X[:500] / 16.0, y[:500]
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])[y]
    opts = {"C": 0.2, "tol": 1e-8, "max_iter": 2000}
    ours = SoftmaxRegression(**opts).fit(X, names)
    ref = LogisticRegression(**opts).fit(X, names)
    assert_array_equal(ours.classes_, np.unique(names))
    assert_array_equal(ours.classes_, ref.classes_)
    pred = ours.predict(X)
    assert pred.dtype.kind == "U"
    assert_array_equal(pred, ref.predict(X))
    assert ours.score(X, names) == ref.score(X, names)
    # Same model as integer labels, with the columns in sorted-name order.
    ints = SoftmaxRegression(**opts).fit(X, y)
    order = np.searchsorted(np.unique(names), np.array(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]))
    assert_allclose(ours.predict_proba(X)[:, order], ints.predict_proba(X), atol=1e-6)


def test_probabilities_are_consistent_and_exact_at_the_edges():
    X, y = load_iris(return_X_y=True)
    clf = SoftmaxRegression(max_iter=1000).fit(X, y)
    P = clf.predict_proba(X)
    assert_allclose(P.sum(axis=1), 1.0, rtol=1e-14)
    assert_allclose(clf.predict_log_proba(X), np.log(P), rtol=1e-12)
    assert_array_equal(clf.predict(X), clf.classes_[P.argmax(axis=1)])
    Z = clf.decision_function(X)
    assert_allclose(clf.predict_log_proba(X), Z - logsumexp(Z, axis=1, keepdims=True),
                    rtol=1e-12, atol=1e-14)
    # Huge inputs: logits near 1e300 give exact one-hot probabilities, never NaN.
    big = clf.predict_proba(X[:5] * 1e298)
    assert np.isfinite(big).all()
    assert_allclose(big.sum(axis=1), 1.0)
    logp = clf.predict_log_proba(X[:5] * 1e298)
    assert not np.isnan(logp).any()


def test_float32_int_and_sparse_inputs_give_the_same_model():
    X, y = load_iris(return_X_y=True)
    opts = {"C": 1.0, "tol": 1e-10, "max_iter": 3000}
    base = SoftmaxRegression(**opts).fit(X, y)
    f32 = SoftmaxRegression(**opts).fit(X.astype(np.float32), y)
    assert base.coef_.dtype == np.float64
    assert_allclose(f32.coef_, base.coef_, atol=1e-4)
    Xs = sp.csr_matrix(X)
    sparse = SoftmaxRegression(**opts).fit(Xs, y)
    # Rounding differs (sparse products), so L-BFGS ends at a slightly different point of
    # the flat valley: compare the objective tightly and the weights loosely.
    assert sparse.objective_ == pytest.approx(base.objective_, rel=1e-10)
    assert_allclose(sparse.coef_, base.coef_, atol=1e-4)
    assert_allclose(sparse.predict_proba(Xs), base.predict_proba(X), atol=1e-5)
    Xi = np.round(X * 10).astype(np.int64)
    assert_array_equal(SoftmaxRegression(**opts).fit(Xi, y).predict(Xi),
                       SoftmaxRegression(**opts).fit(Xi.astype(float), y).predict(Xi))


def test_inputs_are_not_modified():
    X, y = load_iris(return_X_y=True)
    w = np.linspace(0.5, 1.5, len(y))
    X0, y0, w0 = X.copy(), y.copy(), w.copy()
    clf = SoftmaxRegression(max_iter=1000).fit(X, y, sample_weight=w)
    clf.predict_proba(X)
    assert_array_equal(X, X0)
    assert_array_equal(y, y0)
    assert_array_equal(w, w0)


def test_warm_start_starts_from_the_solution():
    X, y = load_iris(return_X_y=True)
    clf = SoftmaxRegression(tol=1e-6, max_iter=1000, warm_start=True).fit(X, y)
    first = int(clf.n_iter_[0])
    coef = clf.coef_.copy()
    clf.fit(X, y)
    assert int(clf.n_iter_[0]) <= 2 < first
    assert_allclose(clf.coef_, coef, atol=1e-4)
    cold = SoftmaxRegression(tol=1e-6, max_iter=1000).fit(X, y)
    cold.fit(X, y)
    assert int(cold.n_iter_[0]) == first
    # Other classes (same number): no warm start.
    clf.fit(X, y + 10)
    assert int(clf.n_iter_[0]) == first


def test_convergence_warning_and_pickle():
    X, y = load_digits(return_X_y=True)
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        clf = SoftmaxRegression(max_iter=3).fit(X, y)
    assert int(clf.n_iter_[0]) == 3
    again = pickle.loads(pickle.dumps(clf))
    assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_verbose_progress_bar(capsys):
    X, y = load_iris(return_X_y=True)
    SoftmaxRegression(max_iter=1000).fit(X, y)
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""
    clf = SoftmaxRegression(max_iter=1000, verbose=True).fit(X, y)
    err = capsys.readouterr().err
    assert "SoftmaxRegression" in err
    assert "loss=" in err
    assert f"{int(clf.n_iter_[0])}/1000" in err


# --------------------------------------------------------------------------- bad input
def test_nan_and_inf_in_X_raise():
    X, y = load_iris(return_X_y=True)
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SoftmaxRegression().fit(Xn, y)
    Xi = X.copy()
    Xi[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        SoftmaxRegression().fit(Xi, y)
    clf = SoftmaxRegression(max_iter=1000).fit(X, y)
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(Xn)


def test_one_class_raises():
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="at least 2 classes.*only one class: .*'a'"):
        SoftmaxRegression().fit(X, np.array(["a"] * 10))
    with pytest.raises(ValueError, match="at least 2 classes"):
        SoftmaxRegression().fit(X, np.ones(10))


def test_bad_targets_and_weights_raise():
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="Unknown label type"):
        SoftmaxRegression().fit(X, np.linspace(0, 1, 10))
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="[Nn]egative"):
        SoftmaxRegression().fit(X, y, sample_weight=-np.ones(10))
    with pytest.raises(ValueError, match="sample_weight.shape"):
        SoftmaxRegression().fit(X, y, sample_weight=np.ones(9))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        SoftmaxRegression().fit(X, y[:9])
    with pytest.raises(NotFittedError):
        SoftmaxRegression().predict(X)
    clf = SoftmaxRegression().fit(X, y)
    with pytest.raises(ValueError, match="3 features"):
        clf.predict(X[:, :2])


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"C": 0.0}, "C must be a real number > 0"),
        ({"C": -1.0}, "C must be"),
        ({"C": np.nan}, "C must be"),
        ({"C": "1"}, "C must be"),
        ({"max_iter": 0}, "max_iter must be an integer >= 1, got 0"),
        ({"max_iter": 2.5}, "max_iter must be"),
        ({"tol": -1e-3}, "tol must be a real number >= 0"),
        ({"fit_intercept": "yes"}, "fit_intercept must be a bool"),
        ({"verbose": 1}, "verbose must be a bool"),
    ],
)
def test_bad_parameters_raise(params, match):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=match):
        SoftmaxRegression(**params).fit(X, y)


def test_demo_section():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = demo_section()
    assert "same predictions on 100.0% of the test set" in text
    assert len(text.splitlines()) == 4
