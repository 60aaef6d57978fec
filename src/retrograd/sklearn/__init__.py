"""scikit-learn estimators trained by retrograd.

`MLPClassifier` takes scikit-learn's `MLPClassifier` constructor parameters and follows its
definitions (the L2 penalty 0.5 alpha ||W||^2 / n per batch, Glorot-uniform initialization,
the convergence rule on the training loss or the validation score, `coefs_` of shape
(n_in, n_out), `loss_curve_`, `n_iter_`, ...); the network is a `retrograd.nn.Sequential`
trained by `retrograd.optim` in float32 by default. retrograd's own additions: `loss`
('cross-entropy', 'focal' or 'mse'), `label_smoothing`, `class_weight` and `gamma`.

Differences from scikit-learn's estimator, by design:
- the output layer is a softmax over n_classes units even for two classes (scikit-learn uses
  one logistic unit), so for a binary problem the last `coefs_` entry has 2 columns, not 1;
- training runs in `dtype` (float32 by default); predictions evaluate the trained weights in
  float64, so they do not depend on how rows are grouped into BLAS calls;
- multilabel targets and sparse inputs are not supported.

Requires scikit-learn (`pip install scikit-learn`); importing retrograd itself does not.
"""

from .estimator import MLPClassifier, expected_failed_checks

# pickles and reprs name the public path, not the private module
MLPClassifier.__module__ = __name__

__all__ = ["MLPClassifier", "expected_failed_checks"]
