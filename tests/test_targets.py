"""retrograd.targets (the target algebra) against torch, scikit-learn's definition and the
formulas, written out independently in NumPy."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import retrograd
import retrograd.nn.functional as F
from retrograd import targets

try:  # scikit-learn is optional: without it, 'balanced' weights are computed by hand
    from sklearn.utils.class_weight import compute_class_weight
except ImportError:  # pragma: no cover - depends on the environment
    compute_class_weight = None

LABELS = np.array([0, 2, 1, 2, 2, 3, 0, 2, 1, 2])  # counts 2, 2, 5, 1
C = 4


def balanced_reference(labels, num_classes):
    """scikit-learn's compute_class_weight('balanced') when installed, else its definition
    n_samples / (n_classes * bincount(y)) computed here."""
    if compute_class_weight is not None:
        return compute_class_weight("balanced", classes=np.arange(num_classes), y=labels)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return len(labels) / (num_classes * counts)


def effective_reference(labels, num_classes, beta):
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.array([(1 - beta) / (1 - beta ** n) for n in counts])
    return w * num_classes / w.sum()


# ------------------------------------------------------------------ one_hot / smooth / soft

@pytest.mark.parametrize("shape", [(7,), (2, 3), ()])
def test_one_hot_matches_torch(shape, rng):
    y = rng.integers(0, 5, shape)
    out = targets.one_hot(retrograd.tensor(y), 5, dtype=np.float64)
    expected = TF.one_hot(torch.tensor(y), 5).numpy().astype(np.float64)
    assert out.shape == expected.shape and out.dtype == np.float64
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_array_equal(targets.one_hot(y, 5).numpy(), expected)  # plain arrays too


def test_one_hot_dtype_defaults_to_retrograd_default():
    assert targets.one_hot(np.array([1]), 3).dtype == retrograd.get_default_dtype()
    assert targets.one_hot(np.array([1]), 3, dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize("bad", [5, -1])
def test_one_hot_rejects_labels_outside_range(bad):
    with pytest.raises(ValueError, match=str(bad)):
        targets.one_hot(np.array([0, bad]), 5)


def test_one_hot_rejects_float_labels_and_bad_num_classes():
    with pytest.raises(TypeError, match="float64"):
        targets.one_hot(np.array([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match="0"):
        targets.one_hot(np.array([0]), 0)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 1.0])
def test_smooth_formula(eps, rng):
    q = rng.uniform(0, 1, (4, 6))
    q /= q.sum(axis=1, keepdims=True)
    out = targets.smooth(retrograd.tensor(q), eps)
    np.testing.assert_allclose(out.numpy(), (1 - eps) * q + eps / 6, rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(out.numpy().sum(axis=1), 1.0, rtol=1e-14)
    assert out.dtype == np.float64


def test_smooth_one_hot_matches_torch_label_smoothing(rng):
    """smooth(one_hot(y), eps) used as a target gives torch's label_smoothing loss."""
    x, y = rng.standard_normal((5, 4)), np.array([0, 3, 1, 1, 2])
    target = targets.smooth(targets.one_hot(y, 4, dtype=np.float64), 0.2)
    out = F.cross_entropy(retrograd.tensor(x), target)
    expected = TF.cross_entropy(torch.tensor(x), torch.tensor(y), label_smoothing=0.2)
    np.testing.assert_allclose(out.item(), expected.item(), rtol=1e-12)


@pytest.mark.parametrize("eps", [-0.1, 1.5])
def test_smooth_rejects_bad_eps(eps):
    with pytest.raises(ValueError, match=str(eps)):
        targets.smooth(np.eye(3), eps)


def test_soft_labels_values():
    out = targets.soft_labels(np.array([2, 0, 1]), 3, dtype=np.float64)
    expected = np.array([[0.1, 0.1, 0.9], [0.9, 0.1, 0.1], [0.1, 0.9, 0.1]])
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_allclose(out.numpy().sum(axis=1), 0.9 + 2 * 0.1)  # not normalized
    custom = targets.soft_labels(np.array([[1, 0]]), 4, positive=0.7, negative=0.05)
    assert custom.shape == (1, 2, 4)
    np.testing.assert_allclose(custom.numpy()[0, 0], [0.05, 0.7, 0.05, 0.05], rtol=1e-7)


# ------------------------------------------------------------------ class weights

def test_inverse_frequency_weights_are_balanced():
    w = targets.inverse_frequency_weights(LABELS, C, dtype=np.float64)
    np.testing.assert_allclose(w.numpy(), balanced_reference(LABELS, C), rtol=1e-15)
    counts = np.array([2, 2, 5, 1])
    np.testing.assert_allclose(w.numpy(), 10 / (4 * counts), rtol=1e-15)  # N / (C n_c)


def test_inverse_frequency_weights_of_balanced_data_are_one():
    labels = np.tile(np.arange(5), 3)
    np.testing.assert_allclose(targets.inverse_frequency_weights(labels, 5).numpy(), 1.0)


def test_inverse_frequency_weights_accept_tensor_and_2d_labels(rng):
    labels = rng.integers(0, 3, (4, 6))
    labels[0, :3] = [0, 1, 2]
    w = targets.inverse_frequency_weights(retrograd.tensor(labels), 3, dtype=np.float64)
    np.testing.assert_allclose(w.numpy(), balanced_reference(labels.ravel(), 3), rtol=1e-15)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.999, 0.9999])
def test_effective_number_weights_formula(beta):
    w = targets.effective_number_weights(LABELS, C, beta=beta, dtype=np.float64).numpy()
    np.testing.assert_allclose(w, effective_reference(LABELS, C, beta), rtol=1e-12)
    np.testing.assert_allclose(w.sum(), C, rtol=1e-14)


def test_effective_number_weights_beta_zero_is_equal_weights():
    w = targets.effective_number_weights(LABELS, C, beta=0.0, dtype=np.float64)
    np.testing.assert_array_equal(w.numpy(), np.ones(C))


def test_effective_number_weights_approach_inverse_frequency():
    """As beta -> 1, (1 - beta) / (1 - beta^n) -> 1 / n: proportional to inverse frequency."""
    inverse = balanced_reference(LABELS, C)
    target = inverse * C / inverse.sum()
    errors = []
    for beta in [0.9, 0.99, 0.999, 0.99999]:
        w = targets.effective_number_weights(LABELS, C, beta=beta, dtype=np.float64).numpy()
        errors.append(np.abs(w - target).max())
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 1e-4


def test_effective_number_weights_default_dtype():
    w = targets.effective_number_weights(LABELS, C)
    assert w.dtype == retrograd.get_default_dtype()


@pytest.mark.parametrize("fn", [targets.inverse_frequency_weights,
                                targets.effective_number_weights])
def test_missing_class_raises_naming_it(fn):
    labels = np.array([0, 1, 3, 1, 0])  # class 2 never occurs
    with pytest.raises(ValueError, match=r"class 2\b"):
        fn(labels, 4)
    with pytest.raises(ValueError, match="4"):  # label outside [0, C)
        fn(np.array([0, 1, 4]), 4)


@pytest.mark.parametrize("beta", [1.0, -0.1, 1.5, float("nan")])
def test_effective_number_weights_reject_bad_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        targets.effective_number_weights(LABELS, C, beta=beta)


def test_weights_plug_into_cross_entropy_like_torch(rng):
    x, y = rng.standard_normal((10, C)), LABELS
    w = targets.inverse_frequency_weights(y, C, dtype=np.float64)
    out = F.cross_entropy(retrograd.tensor(x), y, weight=w)
    expected = TF.cross_entropy(torch.tensor(x), torch.tensor(y),
                                weight=torch.tensor(balanced_reference(y, C)))
    np.testing.assert_allclose(out.item(), expected.item(), rtol=1e-12)
