"""How MLPClassifier trains: the batch loss with scikit-learn's L2 term, the stochastic solvers
(Adam, SGD with scikit-learn's learning-rate schedules and stopping rules) and L-BFGS.

A mixin of MLPClassifier (estimator.py), which holds the hyperparameters and the fitted state.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from .. import functions as _functions
from .. import optim, registry
from ..data import DataLoader, TensorDataset
from ..train.callbacks import Callback
from ..train.fit import fit


class TrainingMixin:
    """MLPClassifier's fitting loops; they read the estimator's hyperparameters from self."""

    def _batch_loss(self, out, target, weight=None, weight_sum=None):
        """The batch's mean loss (the registry's, shared with `retrograd train`): plain, or
        weighted by per-sample weights and divided by their sum."""
        loss_fn = registry.LOSSES[self.loss]
        options = {"label_smoothing": float(self.label_smoothing), "gamma": float(self.gamma)}
        if weight is None:
            return loss_fn(out, target, **options)
        return (loss_fn(out, target, reduction="none", **options) * weight).sum() / weight_sum

    def _penalty(self, linears, weight_sum: float) -> float:
        """scikit-learn's L2 term of the batch loss: 0.5 alpha sum ||W||^2 / weight_sum."""
        if not self.alpha:
            return 0.0
        total = 0.0
        for lin in linears:
            w = lin.weight.numpy().ravel(order="K")  # a view, whatever the memory order
            total += float(np.dot(w, w))
        return 0.5 * self.alpha * total / weight_sum

    def _make_optimizer(self, module):
        params = list(module.parameters())
        if self.solver == "adam":
            return registry.make_optimizer("adam", params, lr=self.learning_rate_init,
                                           betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        return registry.make_optimizer("sgd", params, lr=self.learning_rate_init,
                                       momentum=self.momentum,
                                       nesterov=bool(self.nesterovs_momentum and
                                                     self.momentum > 0))

    def _fit_stochastic(self, X, labels, weights, incremental: bool, rng) -> None:
        module, linears = self._build()
        opt = self._make_optimizer(module)
        if incremental and self._optimizer_state is not None:
            opt.load_state_dict(self._optimizer_state)

        early_stopping = self.early_stopping
        x_val = y_val = w_val = None
        if early_stopping:
            split = train_test_split(X, labels, *(() if weights is None else (weights,)),
                                     random_state=int(rng.integers(2 ** 31)),
                                     test_size=self.validation_fraction, stratify=labels)
            X, x_val, labels, y_val = split[:4]
            if weights is not None:
                weights, w_val = split[4:]
            if x_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
        n_samples = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", stacklevel=4)
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        arrays = (X, labels) if weights is None else (X, labels, weights)
        loader = DataLoader(TensorDataset(*arrays), batch_size=batch_size,
                            shuffle=bool(self.shuffle), generator=rng)

        epochs = _Epochs(self, linears, opt, (x_val, y_val, w_val), n_samples, incremental)
        history = fit(module, self._loop_loss, opt, loader, 1 if incremental else self.max_iter,
                      progress=False, callbacks=[epochs])
        if history.stopped == "interrupted":
            warnings.warn("Training interrupted by user.", stacklevel=4)
        elif history.stopped == "completed" and not incremental and \
                self.n_iter_ == self.max_iter and not epochs.converged:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                          "reached and the optimization hasn't converged yet.",
                          ConvergenceWarning, stacklevel=4)
        if history.stopped == "non-finite":
            raise ValueError(f"Solver produced non-finite parameter weights: {history.message}. "
                             "The input data may contain large values and need to be "
                             "preprocessed.")
        self._store(linears)
        self._optimizer_state = opt.state_dict()
        if early_stopping and getattr(self, "_best_coefs", None) is not None:
            self.coefs_, self.intercepts_ = self._best_coefs, self._best_intercepts
        self._best_coefs = self._best_intercepts = None

    def _loop_loss(self, out, yb, wb=None):
        """The training loop's loss of a batch (x, y) or (x, y, sample weights)."""
        if wb is None:
            return self._batch_loss(out, yb)
        return self._batch_loss(out, yb, wb, _weight_sum(wb))

    def _update_no_improvement_count(self, linears, x_val, y_val, w_val) -> None:
        """scikit-learn's convergence bookkeeping, after each epoch."""
        if self.early_stopping:
            coefs = [lin.weight.numpy().T for lin in linears]
            intercepts = [lin.bias.numpy() for lin in linears]
            predicted = np.argmax(self._logits(x_val, coefs, intercepts), axis=1)
            correct = (predicted == y_val).astype(np.float64)
            score = float(np.average(correct, weights=w_val)) if w_val is None or \
                w_val.sum() > 0 else float(correct.mean())
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_coefs = [c.copy() for c in coefs]  # copies, never views of W
                self._best_intercepts = [b.copy() for b in intercepts]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _trigger_stopping(self, opt, msg: str) -> bool:
        """True to stop; 'adaptive' SGD divides the learning rate by 5 instead, until 1e-6."""
        if self.solver == "sgd" and self.learning_rate == "adaptive":
            lr = opt.param_groups[0]["lr"]
            if lr > 1e-6:
                _set_lr(opt, lr / 5.0)
                if self.verbose:
                    print(msg + f" Setting learning rate to {lr / 5.0:f}")
                return False
            msg += " Learning rate too small. Stopping."
        if self.verbose:
            print(msg + " Stopping.")
        return True

    def _fit_lbfgs(self, X, labels, weights) -> None:
        """Full-batch L-BFGS with a strong-Wolfe line search (retrograd.optim.LBFGS), on the
        objective scikit-learn gives scipy's L-BFGS-B: max_iter iterations, max_fun
        evaluations, gradient tolerance tol, history 10."""
        module, linears = self._build()
        opt = optim.LBFGS(module.parameters(), lr=1, max_iter=self.max_iter,
                          max_eval=self.max_fun, tolerance_grad=self.tol, history_size=10,
                          line_search_fn="strong_wolfe")
        x, target = _functions.from_numpy(X), _functions.from_numpy(labels)
        weight = None if weights is None else _functions.from_numpy(weights)
        weight_sum = float(len(labels)) if weights is None else float(weights.sum())
        scale = 0.5 * self.alpha / weight_sum

        def closure():
            opt.zero_grad()
            loss = self._batch_loss(module(x), target, weight, weight_sum)
            if self.alpha:
                loss = loss + scale * sum((lin.weight * lin.weight).sum() for lin in linears)
            loss.backward()
            return loss

        opt.step(closure)
        state = opt.state[linears[0].weight]
        self.n_iter_ = int(state["n_iter"])
        self.loss_ = float(closure().item())
        self._store(linears)
        if self.n_iter_ >= self.max_iter or state["func_evals"] >= self.max_fun:
            reason = "ITERATIONS" if self.n_iter_ >= self.max_iter else "FUNCTION EVALUATIONS"
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s): "
                          f"STOP: TOTAL NO. OF {reason} REACHED LIMIT. Increase the number "
                          "of iterations (max_iter) or scale the data.", ConvergenceWarning,
                          stacklevel=4)

    # ------------------------------------------------------------------ prediction


def _set_lr(opt, lr: float) -> None:
    """Change SGD's learning rate as scikit-learn does. Its velocity v = mu v - lr g carries the
    old rate, torch's buffer b = mu b + g (the step is lr b) does not: v = -lr b, so b is
    rescaled by old / new and the steps stay scikit-learn's."""
    for group in opt.param_groups:
        old, group["lr"] = group["lr"], lr
        if group.get("momentum"):
            for p in group["params"]:
                buf = opt.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    buf *= old / lr


def _weight_sum(wb) -> float:
    return float(wb.numpy().sum(dtype=np.float64))


class _Epochs(Callback):
    """scikit-learn's bookkeeping around the shared training loop: its L2 term, its Adam
    epsilon, and per epoch n_iter_, t_, loss_curve_, the no-improvement count, the invscaling
    and adaptive learning rates and the stopping rule."""

    def __init__(self, est, linears, opt, validation, n_samples: int, incremental: bool):
        self.est, self.linears, self.opt = est, linears, opt
        self.validation, self.n_samples, self.incremental = validation, n_samples, incremental
        self.accumulated = 0.0
        self.converged = False
        est.n_iter_ = 0

    def _weight_sum(self, loop) -> float:
        batch = loop.batch
        return _weight_sum(batch[2]) if len(batch) == 3 else float(len(batch[1]))

    def on_batch_begin(self, loop) -> None:
        # every sample of the batch has weight 0: nothing to learn from it
        loop.skip_batch = len(loop.batch) == 3 and self._weight_sum(loop) <= 0

    def on_after_backward(self, loop) -> None:
        est = self.est
        # the L2 term of the batch's loss, of the weights before this step updates them
        self.penalty = est._penalty(self.linears, self._weight_sum(loop))
        if est.alpha:  # scikit-learn's L2 gradient alpha W / weight_sum, added in place
            decay = est.alpha / self._weight_sum(loop)
            for lin in self.linears:
                lin.weight.grad.add_(lin.weight, alpha=decay)
        if est.solver == "adam":
            # scikit-learn adds epsilon to sqrt(v) before the bias correction sqrt(1 - b2^t);
            # torch's rule adds it after: this epsilon makes the two updates the same
            t = self.opt.state.get(self.linears[0].weight, {}).get("step", 0) + 1
            eps = est.epsilon / math.sqrt(1.0 - est.beta_2 ** t)
            for group in self.opt.param_groups:
                group["eps"] = eps

    def on_batch_end(self, loop) -> None:
        self.accumulated += (loop.loss_value + self.penalty) * len(loop.batch[0])

    def on_epoch_end(self, loop) -> None:
        est, opt = self.est, self.opt
        est.n_iter_ += 1
        est.loss_ = self.accumulated / self.n_samples
        self.accumulated = 0.0
        est.t_ += self.n_samples
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
        est._update_no_improvement_count(self.linears, *self.validation)
        if est.solver == "sgd" and est.learning_rate == "invscaling":
            _set_lr(opt, est.learning_rate_init / (est.t_ + 1) ** est.power_t)
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if est.early_stopping else "Training loss"
            msg = (f"{what} did not improve more than tol={est.tol:f} for "
                   f"{est.n_iter_no_change} consecutive epochs.")
            if est._trigger_stopping(opt, msg):
                self.converged = True
                loop.stop = "completed"
                return
            est._no_improvement_count = 0
