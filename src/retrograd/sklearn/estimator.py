"""MLPClassifier: scikit-learn's estimator API, hyperparameters and validation; the training
loops are in training.py."""

from __future__ import annotations

import math
import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_array, check_is_fitted, check_X_y

from .. import functions as _functions
from .. import nn
from .. import random as _random
from ..grad_mode import no_grad
from ..targets import effective_number_weights, inverse_frequency_weights

try:  # scikit-learn >= 1.6: checks n_features_in_ and feature_names_in_ as well
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _validate_data = None

__all__ = ["MLPClassifier", "expected_failed_checks"]
from .training import TrainingMixin

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "logistic": nn.Sigmoid, "identity": None}
_SOLVERS = ("adam", "sgd", "lbfgs")
_LOSSES = ("cross-entropy", "focal", "mse")
_LEARNING_RATES = ("constant", "invscaling", "adaptive")
_CLASS_WEIGHTS = ("balanced", "effective")
_EFFECTIVE_NUMBER_BETA = 0.999  # class_weight='effective': Cui et al.'s beta


def expected_failed_checks(estimator) -> dict[str, str]:
    """The scikit-learn estimator checks that `estimator` is expected to fail, with the reason;
    pass it to `check_estimator(..., expected_failed_checks=...)` or `parametrize_with_checks`.

    check_sample_weight_equivalence_on_dense_data fits with integer sample weights and on the
    repeated rows, and compares predict_proba at rtol 1e-7. The two objectives are the same
    (the check's 15 rows make one full batch), but float32 training rounds differently when the
    rows are repeated: relative differences of about 1e-7 to 1e-6 after 200 epochs, and more
    through L-BFGS's line search. It passes with dtype='float64'; tests/test_sklearn.py checks
    the equivalence in float32 at a tolerance that float32 allows.
    """
    if np.dtype(getattr(estimator, "dtype", "float32")) == np.float64:
        return {}
    return {"check_sample_weight_equivalence_on_dense_data": (
        "float32 training: repeated rows and integer weights round differently, beyond the "
        "check's rtol 1e-7 (it passes with dtype='float64')")}


class MLPClassifier(TrainingMixin, ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier with scikit-learn's interface, trained by retrograd.

    Parameters are scikit-learn's (see sklearn.neural_network.MLPClassifier) plus:

    loss : {'cross-entropy', 'focal', 'mse'}, default='cross-entropy'
        Per-sample loss on the softmax output: cross-entropy, the multi-class focal loss
        -(1 - p_y)^gamma log p_y, or the course's squared error between the softmax
        probabilities and the one-hot target, summed over the classes. The same functions as
        `retrograd train --loss` (retrograd.registry.LOSSES).
    label_smoothing : float in [0, 1], default=0.0
        torch's convention: the target is (1 - eps) one_hot + eps / n_classes (cross-entropy
        and mse; not focal).
    class_weight : None, 'balanced', 'effective' or dict, default=None
        Per-class weights that multiply each sample's loss (and its sample_weight): 'balanced'
        is n_samples / (n_classes n_c) (retrograd.targets.inverse_frequency_weights),
        'effective' the effective-number weights of Cui et al. with beta=0.999, a dict maps
        class labels to weights (missing classes get 1). Weighted losses are normalized by the
        summed weights of the batch, as scikit-learn normalizes by the summed sample weights.
    gamma : float >= 0, default=2.0
        The focal loss's focusing parameter.
    dtype : 'float32' or 'float64', default='float32'
        The dtype of the weights and of the training computation.

    Fitted attributes follow scikit-learn's: classes_, n_features_in_, coefs_, intercepts_,
    n_iter_, t_, n_layers_, n_outputs_, out_activation_ ('softmax'), loss_, and for the
    stochastic solvers loss_curve_, best_loss_, validation_scores_, best_validation_score_.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 loss="cross-entropy", label_smoothing=0.0, class_weight=None, gamma=2.0,
                 dtype="float32"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.loss = loss
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight
        self.gamma = gamma
        self.dtype = dtype

    # ------------------------------------------------------------------ scikit-learn API
    def fit(self, X, y, sample_weight=None):
        """Fit the network to X (n_samples, n_features) and labels y (n_samples,); a sample's
        loss is multiplied by its sample_weight (and its class weight)."""
        return self._fit(X, y, sample_weight, incremental=False)

    def _check_solver(self) -> bool:
        """partial_fit exists for the stochastic solvers, as in scikit-learn, and without the
        class weights that need every label at once ('balanced', 'effective')."""
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        if isinstance(self.class_weight, str):
            raise AttributeError(f"partial_fit is not available with class_weight="
                                 f"{self.class_weight!r}: the class frequencies are unknown "
                                 "until all the data has been seen; pass a dict instead.")
        return True

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing from the current weights and optimizer state.
        The first call needs `classes`, every label that y may hold in any call."""
        if classes is not None:
            classes = np.unique(np.asarray(classes))
            if hasattr(self, "classes_") and not np.array_equal(classes, self.classes_):
                raise ValueError(f"`classes={classes}` is not the same as on the last call to "
                                 f"partial_fit, was: {self.classes_}")
            if not hasattr(self, "classes_"):
                self.classes_ = classes
        elif not hasattr(self, "classes_"):
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """The most probable class of each row."""
        scores = self._log_proba(X)
        return self.classes_[np.argmax(scores, axis=1)]

    def predict_log_proba(self, X):
        """log P(class | x), shape (n_samples, n_classes), columns in the order of classes_:
        the log-softmax, -inf where predict_proba underflows to 0 (so that it is
        log(predict_proba(X)), as scikit-learn requires)."""
        log_proba = self._log_proba(X)
        log_proba[np.exp(log_proba) == 0] = -np.inf
        return log_proba

    def predict_proba(self, X):
        """P(class | x) from the softmax output, shape (n_samples, n_classes)."""
        return np.exp(self._log_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False  # retrograd tensors are dense
        tags.classifier_tags.multi_label = False
        return tags

    # ------------------------------------------------------------------ validation
    def _np_dtype(self) -> np.dtype:
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        return dtype

    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        for s in sizes:
            if not isinstance(s, numbers.Integral) or isinstance(s, bool) or s <= 0:
                raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(s) for s in sizes]

    def _validate_hyperparameters(self) -> None:
        def real(name, low, high=math.inf, low_open=False, high_open=False):
            v = getattr(self, name)
            ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and \
                (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
            if not ok:
                lo, hi = "(" if low_open else "[", ")" if high_open else "]"
                raise ValueError(f"{name} must be a real number in {lo}{low}, {high}{hi}, "
                                 f"got {v!r}")

        def integer(name, low):
            v = getattr(self, name)
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")

        def option(name, choices):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got "
                                 f"{getattr(self, name)!r}")

        option("activation", tuple(_ACTIVATIONS))
        option("solver", _SOLVERS)
        option("learning_rate", _LEARNING_RATES)
        option("loss", _LOSSES)
        self._hidden_sizes()
        self._np_dtype()
        real("alpha", 0)
        real("learning_rate_init", 0, low_open=True)
        real("power_t", 0)
        integer("max_iter", 1)
        real("tol", 0)
        real("momentum", 0, 1)
        real("validation_fraction", 0, 1, low_open=True, high_open=True)
        real("beta_1", 0, 1, high_open=True)
        real("beta_2", 0, 1, high_open=True)
        real("epsilon", 0, low_open=True)
        integer("n_iter_no_change", 1)
        integer("max_fun", 1)
        real("label_smoothing", 0, 1)
        real("gamma", 0)
        if self.batch_size != "auto":
            integer("batch_size", 1)
        if self.loss == "focal" and self.label_smoothing:
            raise ValueError("label_smoothing applies to loss='cross-entropy' or 'mse', "
                             "not 'focal'")
        cw = self.class_weight
        if not (cw is None or isinstance(cw, dict) or cw in _CLASS_WEIGHTS):
            raise ValueError(f"class_weight must be None, 'balanced', 'effective' or a dict, "
                             f"got {cw!r}")

    def _check_X(self, X, reset: bool):
        dtype = self._np_dtype()
        if _validate_data is not None:
            return _validate_data(self, X, reset=reset, dtype=dtype)
        X = check_array(X, dtype=dtype)  # pragma: no cover - scikit-learn < 1.6
        self._check_n_features(X, reset)  # pragma: no cover
        return X  # pragma: no cover

    def _check_X_y(self, X, y, reset: bool):
        dtype = self._np_dtype()
        if _validate_data is not None:
            return _validate_data(self, X, y, reset=reset, dtype=dtype)
        X, y = check_X_y(X, y, dtype=dtype)  # pragma: no cover - scikit-learn < 1.6
        self._check_n_features(X, reset)  # pragma: no cover
        return X, y  # pragma: no cover

    def _check_n_features(self, X, reset: bool) -> None:  # pragma: no cover - sklearn < 1.6
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input")

    # ------------------------------------------------------------------ fitting
    def _fit(self, X, y, sample_weight, incremental: bool):
        self._validate_hyperparameters()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._check_X_y(X, y, reset=first_pass)
        check_classification_targets(y)
        labels = self._encode(y, incremental, first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype,
                                                 ensure_non_negative=True)
            if not sample_weight.sum() > 0:
                raise ValueError("Sample weights must contain at least one non-zero number.")
        rng = _generator(self.random_state)
        if first_pass:
            self._initialize(X.shape[1], len(self.classes_), rng)
        weights = self._sample_weights(labels, sample_weight)
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, labels, weights)
        else:
            self._fit_stochastic(X, labels, weights, incremental, rng)
        if not all(np.isfinite(a).all() for a in (*self.coefs_, *self.intercepts_)):
            raise ValueError("Solver produced non-finite parameter weights. The input data may "
                             "contain large values and need to be preprocessed.")
        return self

    def _encode(self, y, incremental: bool, first_pass: bool) -> np.ndarray:
        """Class indices of y in classes_ (set here by a fresh fit)."""
        y = np.asarray(y)
        if not incremental and (first_pass or not hasattr(self, "classes_")):
            self.classes_ = np.unique(y)
        present = np.unique(y)
        if not incremental and self.warm_start and not first_pass and \
                not np.array_equal(present, self.classes_):
            raise ValueError(f"warm_start can only be used where `y` has the same classes as "
                             f"in the previous call to fit. Previously got {self.classes_}, "
                             f"`y` has {present}")
        unknown = present[~np.isin(present, self.classes_)]
        if unknown.size:
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                             f"{self.classes_}. 'y' has {present}.")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _class_weights(self, labels: np.ndarray) -> np.ndarray | None:
        n_classes = len(self.classes_)
        cw = self.class_weight
        if cw is None:
            return None
        if cw == "balanced":
            return inverse_frequency_weights(labels, n_classes, dtype=np.float64).numpy()
        if cw == "effective":
            return effective_number_weights(labels, n_classes, beta=_EFFECTIVE_NUMBER_BETA,
                                            dtype=np.float64).numpy()
        w = np.ones(n_classes)
        for label, value in cw.items():
            where = np.flatnonzero(self.classes_ == label)
            if where.size == 0:
                raise ValueError(f"class_weight has the label {label!r}, which is not a class "
                                 f"(classes: {self.classes_})")
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"class weights must be finite and >= 0, got {value!r} for "
                                 f"{label!r}")
            w[where[0]] = value
        return w

    def _sample_weights(self, labels: np.ndarray, sample_weight) -> np.ndarray | None:
        """Each sample's weight: sample_weight times its class weight (None if neither)."""
        cw = self._class_weights(labels)
        if cw is None and sample_weight is None:
            return None
        s = np.ones(len(labels)) if sample_weight is None else sample_weight.astype(np.float64)
        if cw is not None:
            s = s * cw[labels]
        if not s.sum() > 0:
            raise ValueError("the sample and class weights are zero for every sample")
        return s.astype(self._np_dtype())

    def _initialize(self, n_features: int, n_classes: int, rng: np.random.Generator) -> None:
        """Glorot-uniform weights and biases, as scikit-learn initializes them."""
        dtype = self._np_dtype()
        units = [n_features, *self._hidden_sizes(), n_classes]
        factor = 2.0 if self.activation == "logistic" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(units[:-1], units[1:], strict=True):
            bound = math.sqrt(factor / (fan_in + fan_out))
            self.coefs_.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
            self.intercepts_.append(rng.uniform(-bound, bound, fan_out).astype(dtype))
        self.n_layers_ = len(units)
        self.n_outputs_ = n_classes
        self.out_activation_ = "softmax"
        self.n_iter_ = 0
        self.t_ = 0
        self._optimizer_state = None
        if self.solver != "lbfgs":
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _build(self):
        """(Sequential, its Linear layers) holding copies of coefs_ and intercepts_.

        Linear's constructor draws its default initialization from retrograd's global
        generator; its state is restored, so fitting never moves the user's global stream.
        """
        dtype = self._np_dtype()
        act = _ACTIVATIONS[self.activation]
        layers, linears = [], []
        state = _random.get_rng_state()
        try:
            for i, (coef, intercept) in enumerate(zip(self.coefs_, self.intercepts_,
                                                      strict=True)):
                linear = nn.Linear(coef.shape[0], coef.shape[1], dtype=dtype)
                with no_grad():
                    linear.weight.copy_(coef.T)
                    linear.bias.copy_(intercept)
                layers.append(linear)
                linears.append(linear)
                if i < len(self.coefs_) - 1 and act is not None:
                    layers.append(act())
        finally:
            _random.set_rng_state(state)
        return nn.Sequential(*layers), linears

    def _store(self, linears) -> None:
        self.coefs_ = [lin.weight.numpy().T.copy() for lin in linears]  # copies, never views
        self.intercepts_ = [lin.bias.numpy().copy() for lin in linears]

    def _logits(self, X, coefs, intercepts) -> np.ndarray:
        """The output layer's logits in float64 (the weights cast up from their dtype)."""
        act = self.activation
        last = len(coefs) - 1
        with no_grad():
            h = _functions.from_numpy(np.asarray(X, dtype=np.float64))
            for i, (w, b) in enumerate(zip(coefs, intercepts, strict=True)):
                h = h @ _functions.from_numpy(np.asarray(w, dtype=np.float64)) \
                    + _functions.from_numpy(np.asarray(b, dtype=np.float64))
                if i < last:
                    h = h.relu() if act == "relu" else h.tanh() if act == "tanh" else \
                        h.sigmoid() if act == "logistic" else h
        return h.numpy()

    def _log_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        with no_grad():
            return _functions.from_numpy(self._logits(X, self.coefs_, self.intercepts_)) \
                .log_softmax(1).numpy()



def _generator(random_state) -> np.random.Generator:
    """A NumPy Generator from random_state: None (fresh entropy), an int, a Generator (used
    as is) or a RandomState (seeded from it, as scikit-learn's check_random_state draws)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.default_rng(None if random_state is None else int(random_state))
    raise ValueError(f"random_state must be None, an int, a numpy Generator or RandomState, "
                     f"got {random_state!r}")
