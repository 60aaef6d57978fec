"""retrograd.sklearn.MLPClassifier against scikit-learn: its estimator checks, its own
MLPClassifier (same initial weights: same trajectory), meta-estimators (GridSearchCV, Pipeline,
cross_val_score) and formulas (the L2 penalty, the convergence rule, weights vs repeated rows)."""

import importlib.util
import os
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.neural_network import MLPClassifier as SkMLP
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.estimator_checks import estimator_checks_generator

import retrograd
from retrograd.data import digits, imbalanced_spirals
from retrograd.sklearn import MLPClassifier, expected_failed_checks

# ----------------------------------------------------------------------------------------------
# data


@pytest.fixture(scope="module")
def digits_split():
    """scikit-learn's digits, pixels scaled to [0, 1] in float64: 1438 train / 359 test."""
    split = digits()
    return (split.x_train.astype(np.float64) / 16, split.y_train,
            split.x_test.astype(np.float64) / 16, split.y_test)


@pytest.fixture(scope="module")
def small_digits(digits_split):
    """600 training rows (fast fits)."""
    x, y, x_test, y_test = digits_split
    return x[:600], y[:600], x_test, y_test


def recall(y_true, y_pred, label) -> float:
    member = y_true == label
    return float(np.mean(y_pred[member] == label))


def quiet_fit(estimator, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(*args, **kwargs)


# ----------------------------------------------------------------------------------------------
# scikit-learn's estimator checks

CHECKED = [
    MLPClassifier(random_state=0),
    MLPClassifier(solver="lbfgs", dtype="float64", random_state=0),
    MLPClassifier((20, 20), activation="tanh", solver="sgd", loss="focal",
                  class_weight="balanced", random_state=0),
    MLPClassifier(activation="logistic", loss="mse", label_smoothing=0.1, random_state=0),
]

# Checks that cannot run in this environment because they need what the project does not depend
# on (pandas; array_api_strict with SCIPY_ARRAY_API=1): they would raise SkipTest inside, so they
# are left out here rather than collected as skips.
_ARRAY_API = importlib.util.find_spec("array_api_strict") is not None and \
    os.environ.get("SCIPY_ARRAY_API") == "1"
_MISSING = {name for name, available in (
    ("check_sample_weights_pandas_series", importlib.util.find_spec("pandas") is not None),
    ("check_classifier_data_not_an_array", importlib.util.find_spec("pandas") is not None),
    ("check_dataframe_column_names_consistency", importlib.util.find_spec("pandas") is not None),
    ("check_array_api_input", _ARRAY_API),
) if not available}


def _check_name(check) -> str:
    func = getattr(check, "func", check)
    return getattr(func, "__name__", str(func))


def _estimator_checks():
    params = []
    for est in CHECKED:
        for item in estimator_checks_generator(est, expected_failed_checks=expected_failed_checks(
                est), mark="xfail", xfail_strict=True):
            estimator, check = item.values[:2] if hasattr(item, "values") else item
            name = _check_name(check)
            if name in _MISSING:
                continue
            marks = item.marks if hasattr(item, "marks") else ()
            label = "".join(repr(estimator).split())
            params.append(pytest.param(estimator, check, marks=marks, id=f"{label}-{name}"))
    return params


@pytest.mark.parametrize("estimator, check", _estimator_checks())
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_only_the_float32_weight_equivalence_check_is_expected_to_fail():
    assert expected_failed_checks(MLPClassifier()).keys() == {
        "check_sample_weight_equivalence_on_dense_data"}
    assert expected_failed_checks(MLPClassifier(dtype="float64")) == {}


# ----------------------------------------------------------------------------------------------
# the same algorithm as scikit-learn's MLPClassifier


def _same_start(ours, theirs, x, y):
    """Fit scikit-learn's for one epoch and ours to build its layers, then give ours
    scikit-learn's weights: both continue (warm_start) from the same point."""
    quiet_fit(theirs.set_params(max_iter=1), x, y)
    quiet_fit(ours.set_params(max_iter=1), x, y)
    ours.coefs_ = [c.copy() for c in theirs.coefs_]
    ours.intercepts_ = [b.copy() for b in theirs.intercepts_]


@pytest.mark.parametrize("solver, extra", [
    ("adam", {}),
    ("adam", {"alpha": 0.5, "beta_1": 0.8, "epsilon": 1e-4}),
    ("sgd", {"momentum": 0.9, "nesterovs_momentum": True}),
    ("sgd", {"momentum": 0.5, "nesterovs_momentum": False, "alpha": 0.1}),
    ("sgd", {"momentum": 0.9, "learning_rate": "invscaling", "learning_rate_init": 0.5,
             "power_t": 0.25}),
    # the training loss never improves by tol=10: the learning rate is divided by 5 each epoch
    ("sgd", {"learning_rate": "adaptive", "tol": 10.0, "n_iter_no_change": 1}),
])
def test_same_trajectory_as_sklearn_from_the_same_weights(small_digits, solver, extra):
    """Same initial weights, same batches (shuffle=False): the loss curve and the weights
    follow scikit-learn's (its L2 term, its Adam with epsilon before the bias correction)."""
    x, y, _, _ = small_digits
    params = {**dict(hidden_layer_sizes=(32, 16), solver=solver, batch_size=128, shuffle=False,
                     tol=0.0, learning_rate_init=0.01, warm_start=True), **extra}
    theirs, ours = SkMLP(**params), MLPClassifier(**params, dtype="float64")
    _same_start(ours, theirs, x, y)
    quiet_fit(theirs.set_params(max_iter=6), x, y)
    quiet_fit(ours.set_params(max_iter=6), x, y)
    np.testing.assert_allclose(ours.loss_curve_[-6:], theirs.loss_curve_[-6:], rtol=1e-12)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_,
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.predict_proba(x), theirs.predict_proba(x), atol=1e-9)
    assert ours.t_ == theirs.t_


def test_lbfgs_loss_is_sklearns_objective(small_digits):
    """loss_ = mean cross-entropy + 0.5 alpha sum ||W||^2 / n, computed here from coefs_."""
    x, y, _, _ = small_digits
    alpha = 0.3
    est = quiet_fit(MLPClassifier((16,), solver="lbfgs", alpha=alpha, max_iter=40,
                                  dtype="float64", random_state=0), x, y)
    h = np.maximum(x @ est.coefs_[0] + est.intercepts_[0], 0)
    z = h @ est.coefs_[1] + est.intercepts_[1]
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    expected = -logp[np.arange(len(y)), y].mean() \
        + 0.5 * alpha * sum((w ** 2).sum() for w in est.coefs_) / len(y)
    assert est.loss_ == pytest.approx(expected, rel=1e-9)
    assert est.n_iter_ == 40  # max_iter is a limit on L-BFGS iterations


def test_digits_accuracy_comparable_to_sklearn(digits_split):
    x, y, x_test, y_test = digits_split
    ours, theirs = [], []
    for seed in range(3):
        params = dict(hidden_layer_sizes=(64,), max_iter=60, random_state=seed)
        ours.append(quiet_fit(MLPClassifier(**params), x, y).score(x_test, y_test))
        theirs.append(quiet_fit(SkMLP(**params), x, y).score(x_test, y_test))
    assert np.mean(ours) >= np.mean(theirs) - 0.02, (ours, theirs)
    assert min(ours) > 0.9


def test_coefs_shapes_equal_sklearns(small_digits):
    x, y, _, _ = small_digits
    params = dict(hidden_layer_sizes=(30, 20), max_iter=2, random_state=0)
    ours, theirs = quiet_fit(MLPClassifier(**params), x, y), quiet_fit(SkMLP(**params), x, y)
    assert [c.shape for c in ours.coefs_] == [c.shape for c in theirs.coefs_] \
        == [(64, 30), (30, 20), (20, 10)]
    assert [b.shape for b in ours.intercepts_] == [b.shape for b in theirs.intercepts_]
    assert (ours.n_layers_, ours.n_outputs_, ours.n_features_in_) == \
        (theirs.n_layers_, theirs.n_outputs_, theirs.n_features_in_)
    assert all(isinstance(c, np.ndarray) and c.dtype == np.float32 for c in ours.coefs_)
    # two classes: a softmax over two units, where scikit-learn has one logistic unit
    binary = y < 5
    ours2 = quiet_fit(MLPClassifier(**params), x, binary)
    theirs2 = quiet_fit(SkMLP(**params), x, binary)
    assert ours2.coefs_[-1].shape == (20, 2) and theirs2.coefs_[-1].shape == (20, 1)
    assert ours2.predict_proba(x).shape == theirs2.predict_proba(x).shape == (len(x), 2)


# ----------------------------------------------------------------------------------------------
# convergence rule, attributes, warnings


def _stop_epoch(values, tol, patience, higher_is_better):
    """The epoch (1-based) at which scikit-learn's rule stops, or None."""
    best, count = (-np.inf if higher_is_better else np.inf), 0
    for epoch, v in enumerate(values, start=1):
        worse = v < best + tol if higher_is_better else v > best - tol
        count = count + 1 if worse else 0
        best = max(best, v) if higher_is_better else min(best, v)
        if count > patience:
            return epoch
    return None


def test_convergence_rule_on_the_training_loss(small_digits):
    x, y, _, _ = small_digits
    est = MLPClassifier((16,), tol=0.05, n_iter_no_change=3, max_iter=200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(x, y)
    assert est.n_iter_ == len(est.loss_curve_) == _stop_epoch(est.loss_curve_, 0.05, 3, False)
    assert est.best_loss_ == min(est.loss_curve_)
    assert est.loss_ == est.loss_curve_[-1]
    assert est.validation_scores_ is None and est.best_validation_score_ is None


def test_early_stopping_rule_and_restored_best_weights(digits_split):
    x, y, _, _ = digits_split
    est = MLPClassifier((32,), early_stopping=True, validation_fraction=0.2, tol=1e-3,
                        n_iter_no_change=4, max_iter=300, learning_rate_init=0.01,
                        random_state=0).fit(x, y)
    scores = est.validation_scores_
    assert est.n_iter_ == len(scores) == _stop_epoch(scores, 1e-3, 4, True) < 300
    assert est.best_validation_score_ == max(scores)
    assert est.best_loss_ is None
    # the restored weights are the best epoch's: the same fit stopped after that epoch (same
    # seed: same split, same batches) ends with the same weights
    best_epoch = int(np.argmax(scores)) + 1
    again = quiet_fit(clone(est).set_params(max_iter=best_epoch, n_iter_no_change=1000), x, y)
    for a, b in zip(est.coefs_, again.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)


def test_convergence_warning_when_max_iter_is_reached(small_digits):
    x, y, _, _ = small_digits
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(3\\)"):
        MLPClassifier((8,), max_iter=3, random_state=0).fit(x, y)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        MLPClassifier((8,), solver="lbfgs", max_iter=3, random_state=0).fit(x, y)


# ----------------------------------------------------------------------------------------------
# meta-estimators


def test_grid_search_picks_the_best_cross_validated_model(small_digits):
    x, y, x_test, y_test = small_digits
    grid = {"hidden_layer_sizes": [(4,), (48,)], "alpha": [1e-4, 10.0]}
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    base = MLPClassifier(max_iter=40, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(base, grid, cv=cv).fit(x, y)
        manual = {}
        for hidden in grid["hidden_layer_sizes"]:
            for alpha in grid["alpha"]:
                est = clone(base).set_params(hidden_layer_sizes=hidden, alpha=alpha)
                manual[(hidden, alpha)] = cross_val_score(est, x, y, cv=cv).mean()
    best = max(manual, key=manual.get)
    assert (search.best_params_["hidden_layer_sizes"], search.best_params_["alpha"]) == best
    assert search.best_score_ == pytest.approx(manual[best], abs=1e-12)
    assert best == ((48,), 1e-4)  # the wide, lightly regularized network
    assert search.score(x_test, y_test) > 0.85


def test_cross_val_score_in_a_pipeline(small_digits):
    x, y, _, _ = small_digits
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    params = dict(hidden_layer_sizes=(32,), max_iter=30, random_state=0)
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", MLPClassifier(**params))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, x, y, cv=cv)
        manual = []
        for train, test in cv.split(x, y):
            scaler = StandardScaler().fit(x[train])
            est = MLPClassifier(**params).fit(scaler.transform(x[train]), y[train])
            manual.append(np.mean(est.predict(scaler.transform(x[test])) == y[test]))
        theirs = cross_val_score(make_pipeline(StandardScaler(), SkMLP(**params)), x, y, cv=cv)
    np.testing.assert_allclose(scores, manual)
    assert scores.mean() >= theirs.mean() - 0.03


# ----------------------------------------------------------------------------------------------
# labels


@pytest.mark.parametrize("names", [
    np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]),
    np.array([-7, -3, -1, 0, 2, 5, 11, 12, 40, 1000]),
    np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
             dtype=object),
])
def test_any_label_type(small_digits, names):
    """Labels of any type give the same model as their ranks (np.unique order)."""
    x, y, x_test, _ = small_digits
    labels = names[y]
    est = quiet_fit(MLPClassifier((16,), max_iter=5, random_state=0), x, labels)
    np.testing.assert_array_equal(est.classes_, np.unique(names))
    ranks = np.searchsorted(np.unique(names), labels)
    ref = quiet_fit(MLPClassifier((16,), max_iter=5, random_state=0), x, ranks)
    np.testing.assert_array_equal(est.predict(x_test), est.classes_[ref.predict(x_test)])
    np.testing.assert_array_equal(est.predict_proba(x_test), ref.predict_proba(x_test))
    assert est.score(x, labels) == ref.score(x, ranks)


# ----------------------------------------------------------------------------------------------
# sample weights and class weights


def test_zero_weight_for_a_class_reduces_its_recall(small_digits):
    x, y, x_test, y_test = small_digits
    params = dict(hidden_layer_sizes=(32,), max_iter=40, random_state=0)
    plain = quiet_fit(MLPClassifier(**params), x, y)
    weights = np.where(y == 3, 0.0, 1.0)
    weighted = quiet_fit(MLPClassifier(**params), x, y, sample_weight=weights)
    assert recall(y_test, plain.predict(x_test), 3) > 0.8
    assert recall(y_test, weighted.predict(x_test), 3) < 0.2


@pytest.mark.parametrize("solver, extra, tol", [
    ("lbfgs", dict(dtype="float64", max_iter=60), 1e-7),
    ("adam", dict(dtype="float64", batch_size=10_000, max_iter=30), 1e-7),  # one full batch
    ("sgd", dict(dtype="float64", batch_size=10_000, max_iter=30), 1e-7),
    ("adam", dict(batch_size=10_000, max_iter=30), 2e-4),  # float32
])
def test_integer_weights_equal_repeated_rows(small_digits, solver, extra, tol):
    """Weights 0..3 fit the same model as rows repeated 0..3 times (full-batch objectives)."""
    x, y, x_test, _ = small_digits
    x, y = x[:300], y[:300]
    w = np.random.default_rng(0).integers(0, 4, len(y))
    params = dict(hidden_layer_sizes=(16,), solver=solver, alpha=0.01, random_state=0,
                  shuffle=False, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # batch_size larger than n: clipped, as scikit-learn
        weighted = MLPClassifier(**params).fit(x, y, sample_weight=w)
        repeated = MLPClassifier(**params).fit(np.repeat(x, w, axis=0), np.repeat(y, w))
    np.testing.assert_allclose(weighted.predict_proba(x_test), repeated.predict_proba(x_test),
                               rtol=tol, atol=tol)
    assert weighted.loss_ == pytest.approx(repeated.loss_, rel=max(tol, 1e-9) * 10)


def test_class_weight_balanced_raises_minority_recall():
    split = imbalanced_spirals(minority=0.05, n_samples=2000, seed=0)
    params = dict(hidden_layer_sizes=(16,), max_iter=30, learning_rate_init=0.01,
                  random_state=0)
    fit = lambda **kw: quiet_fit(MLPClassifier(**params, **kw), split.x_train, split.y_train)
    plain, balanced, effective = fit(), fit(class_weight="balanced"), fit(
        class_weight="effective")
    minority = 1  # 75 of 1500 training samples
    r_plain, r_balanced, r_effective = (recall(split.y_test, m.predict(split.x_test), minority)
                                        for m in (plain, balanced, effective))
    assert r_balanced > r_plain + 0.3, (r_plain, r_balanced)
    assert r_effective > r_plain + 0.3, (r_plain, r_effective)
    # 'balanced' is scikit-learn's formula, folded into the sample weights
    cw = compute_class_weight("balanced", classes=np.unique(split.y_train), y=split.y_train)
    by_weight = quiet_fit(MLPClassifier(**params), split.x_train, split.y_train,
                          sample_weight=cw[split.y_train])
    np.testing.assert_allclose(balanced.predict_proba(split.x_test),
                               by_weight.predict_proba(split.x_test), rtol=1e-4, atol=1e-5)


def test_class_weight_dict_equals_sample_weights(small_digits):
    x, y, x_test, _ = small_digits
    labels = np.array(list("abcdefghij"))[y]
    params = dict(hidden_layer_sizes=(16,), max_iter=10, random_state=0)
    est = quiet_fit(MLPClassifier(**params, class_weight={"c": 3.0, "h": 0.5}), x, labels)
    w = np.select([labels == "c", labels == "h"], [3.0, 0.5], 1.0)
    ref = quiet_fit(MLPClassifier(**params), x, labels, sample_weight=w)
    np.testing.assert_allclose(est.predict_proba(x_test), ref.predict_proba(x_test),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="not a class"):
        MLPClassifier(class_weight={"z": 2.0}).fit(x, labels)


# ----------------------------------------------------------------------------------------------
# losses


def test_focal_with_gamma_zero_is_cross_entropy(small_digits):
    x, y, x_test, _ = small_digits
    params = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    ce = quiet_fit(MLPClassifier(**params), x, y)
    focal = quiet_fit(MLPClassifier(**params, loss="focal", gamma=0.0), x, y)
    np.testing.assert_allclose(focal.predict_proba(x_test), ce.predict_proba(x_test),
                               rtol=1e-5, atol=1e-6)
    assert focal.loss_ == pytest.approx(ce.loss_, rel=1e-5)


@pytest.mark.parametrize("loss", ["focal", "mse"])
def test_other_losses_learn_digits(digits_split, loss):
    x, y, x_test, y_test = digits_split
    est = quiet_fit(MLPClassifier((64,), loss=loss, max_iter=40, learning_rate_init=0.003,
                                  random_state=0), x, y)
    reference = quiet_fit(SkMLP((64,), max_iter=40, learning_rate_init=0.003, random_state=0),
                          x, y)
    assert est.score(x_test, y_test) >= reference.score(x_test, y_test) - 0.03


def test_label_smoothing_caps_confidence(small_digits):
    """With smoothing eps the optimal probability of the true class is 1 - eps + eps / C."""
    x, y, _, _ = small_digits
    eps = 0.2
    est = quiet_fit(MLPClassifier((64,), solver="lbfgs", label_smoothing=eps, alpha=0.0,
                                  max_iter=300, random_state=0), x, y)
    top = est.predict_proba(x).max(axis=1)
    assert np.median(top) == pytest.approx(1 - eps + eps / 10, abs=0.01)
    assert top.max() < 1 - eps + eps / 10 + 0.05


# ----------------------------------------------------------------------------------------------
# partial_fit, warm start


def test_partial_fit_over_batches_learns(digits_split):
    x, y, x_test, y_test = digits_split
    classes = np.unique(y)
    ours = MLPClassifier((64,), random_state=0)
    theirs = SkMLP((64,), random_state=0)
    for _ in range(15):
        for start in range(0, len(x), 250):
            part = slice(start, start + 250)
            ours.partial_fit(x[part], y[part], classes=classes)
            theirs.partial_fit(x[part], y[part], classes=classes)
    assert ours.score(x_test, y_test) >= theirs.score(x_test, y_test) - 0.02
    assert ours.score(x_test, y_test) > 0.85
    assert ours.n_iter_ == 1 and ours.t_ == 15 * len(x)  # scikit-learn's bookkeeping


def test_partial_fit_continues_the_optimizer(small_digits):
    """Two partial_fit calls are the two epochs of fit(max_iter=2) (shuffle=False)."""
    x, y, _, _ = small_digits
    params = dict(hidden_layer_sizes=(16,), shuffle=False, random_state=0)
    inc = MLPClassifier(**params)
    inc.partial_fit(x, y, classes=np.unique(y))
    inc.partial_fit(x, y)
    full = quiet_fit(MLPClassifier(**params, max_iter=2), x, y)
    for a, b in zip(inc.coefs_ + inc.intercepts_, full.coefs_ + full.intercepts_, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(inc.loss_curve_, full.loss_curve_)


def test_partial_fit_errors(small_digits):
    x, y, _, _ = small_digits
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(x, y)
    est = MLPClassifier((8,)).partial_fit(x[y < 5], y[y < 5], classes=np.arange(5))
    with pytest.raises(ValueError, match="classes not in"):
        est.partial_fit(x, y)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(x, y, classes=np.unique(y))


def test_warm_start_continues(small_digits):
    x, y, _, _ = small_digits
    est = quiet_fit(MLPClassifier((16,), max_iter=3, warm_start=True, random_state=0), x, y)
    before = [c.copy() for c in est.coefs_]
    quiet_fit(est, x, y)
    assert len(est.loss_curve_) == 6 and est.n_iter_ == 3
    assert not np.allclose(before[0], est.coefs_[0])
    with pytest.raises(ValueError, match="warm_start"):
        est.fit(x[y < 9], y[y < 9])


# ----------------------------------------------------------------------------------------------
# pickling, determinism, the global generator


def test_pickle_round_trip_predicts_and_continues_the_same(small_digits):
    x, y, x_test, _ = small_digits
    est = MLPClassifier((16,), random_state=0).partial_fit(x, y, classes=np.unique(y))
    copy = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(copy.predict_proba(x_test), est.predict_proba(x_test))
    np.testing.assert_array_equal(copy.predict(x_test), est.predict(x_test))
    est.partial_fit(x, y)
    copy.partial_fit(x, y)  # the Adam moments travelled with it
    for a, b in zip(est.coefs_, copy.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)


def test_random_state_makes_fits_reproducible(small_digits):
    x, y, x_test, _ = small_digits
    fit = lambda seed: quiet_fit(MLPClassifier((16,), max_iter=5, random_state=seed), x, y)
    a, b, c = fit(0), fit(0), fit(1)
    np.testing.assert_array_equal(a.predict_proba(x_test), b.predict_proba(x_test))
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])
    gen = quiet_fit(MLPClassifier((16,), max_iter=5, random_state=np.random.default_rng(0)),
                    x, y)
    np.testing.assert_array_equal(gen.coefs_[0], a.coefs_[0])  # default_rng(0) is seed 0


def test_fit_leaves_retrogrades_global_generator_alone(small_digits):
    x, y, _, _ = small_digits
    retrograd.manual_seed(123)
    expected = retrograd.randn(5).numpy()
    retrograd.manual_seed(123)
    quiet_fit(MLPClassifier((8,), max_iter=2, random_state=0), x, y)
    MLPClassifier((8,)).partial_fit(x, y, classes=np.unique(y))
    np.testing.assert_array_equal(retrograd.randn(5).numpy(), expected)


# ----------------------------------------------------------------------------------------------
# parameters


def test_get_set_params_round_trip():
    est = MLPClassifier((5, 3), solver="sgd", class_weight={1: 2.0}, loss="focal")
    params = est.get_params()
    assert params["hidden_layer_sizes"] == (5, 3) and params["class_weight"] == {1: 2.0}
    assert params.keys() == set(SkMLP().get_params()) | {
        "loss", "label_smoothing", "class_weight", "gamma", "dtype"}
    clone_ = clone(est).set_params(alpha=0.5)
    assert clone_.alpha == 0.5 and clone_.hidden_layer_sizes == (5, 3)


@pytest.mark.parametrize("bad", [
    dict(activation="softplus"), dict(solver="rmsprop"), dict(loss="hinge"),
    dict(hidden_layer_sizes=(4, 0)), dict(alpha=-1.0), dict(dtype="int32"),
    dict(label_smoothing=1.5), dict(loss="focal", label_smoothing=0.1),
    dict(class_weight="auto"), dict(batch_size=0), dict(validation_fraction=1.0),
])
def test_invalid_parameters_raise_at_fit(small_digits, bad):
    x, y, _, _ = small_digits
    with pytest.raises(ValueError):
        MLPClassifier(**bad).fit(x[:50], y[:50])
