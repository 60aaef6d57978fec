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
from .. import optim
from ..data import DataLoader, TensorDataset
from ..nn import functional as F
from ..targets import one_hot, smooth


class TrainingMixin:
    """MLPClassifier's fitting loops; they read the estimator's hyperparameters from self."""

    def _batch_loss(self, out, target, weight=None, weight_sum=None):
        """The batch's mean loss: plain, or weighted by per-sample weights and divided by
        their sum (reduction='none' losses times the weights)."""
        reduction = "mean" if weight is None else "none"
        if self.loss == "cross-entropy":
            loss = F.cross_entropy(out, target, reduction=reduction,
                                   label_smoothing=float(self.label_smoothing))
        elif self.loss == "focal":
            loss = F.focal_loss(out, target, gamma=float(self.gamma), reduction=reduction)
        else:
            t = one_hot(target.numpy(), out.shape[1], dtype=out.dtype)
            if self.label_smoothing:
                t = smooth(t, float(self.label_smoothing))
            loss = F.mse_loss(out.softmax(1), t, reduction="none").mean(1)
            if weight is None:
                loss = loss.mean()
        if weight is None:
            return loss
        return (loss * weight).sum() / weight_sum

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
            return optim.Adam(params, lr=self.learning_rate_init,
                              betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        return optim.SGD(params, lr=self.learning_rate_init, momentum=self.momentum,
                         nesterov=bool(self.nesterovs_momentum and self.momentum > 0))

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

        self.n_iter_ = 0
        try:
            for _ in range(self.max_iter):
                accumulated = 0.0
                for batch in loader:
                    accumulated += self._step(module, linears, opt, batch) * len(batch[0])
                self.n_iter_ += 1
                self.loss_ = accumulated / n_samples
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                self._update_no_improvement_count(linears, x_val, y_val, w_val)
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    _set_lr(opt, self.learning_rate_init / (self.t_ + 1) ** self.power_t)
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if early_stopping else "Training loss"
                    msg = (f"{what} did not improve more than tol={self.tol:f} for "
                           f"{self.n_iter_no_change} consecutive epochs.")
                    if self._trigger_stopping(opt, msg):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                                  "reached and the optimization hasn't converged yet.",
                                  ConvergenceWarning, stacklevel=4)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=4)
        self._store(linears)
        self._optimizer_state = opt.state_dict()
        if early_stopping and getattr(self, "_best_coefs", None) is not None:
            self.coefs_, self.intercepts_ = self._best_coefs, self._best_intercepts
        self._best_coefs = self._best_intercepts = None

    def _step(self, module, linears, opt, batch) -> float:
        """One optimizer step on a batch; returns the batch loss with the L2 term."""
        if len(batch) == 3:
            xb, yb, wb = batch
            weight_sum = float(wb.numpy().sum(dtype=np.float64))
            if weight_sum <= 0:  # every sample of the batch has weight 0: nothing to learn
                return 0.0
            loss = self._batch_loss(module(xb), yb, wb, weight_sum)
        else:
            xb, yb = batch
            weight_sum = float(len(yb))
            loss = self._batch_loss(module(xb), yb)
        value = float(loss.item()) + self._penalty(linears, weight_sum)
        opt.zero_grad()
        loss.backward()
        if self.alpha:  # scikit-learn's L2 gradient alpha W / weight_sum, added in place
            decay = self.alpha / weight_sum
            for lin in linears:
                lin.weight.grad.add_(lin.weight, alpha=decay)
        if self.solver == "adam":
            # scikit-learn adds epsilon to sqrt(v) before the bias correction sqrt(1 - b2^t);
            # torch's rule adds it after: this epsilon makes the two updates the same
            t = opt.state.get(linears[0].weight, {}).get("step", 0) + 1
            eps = self.epsilon / math.sqrt(1.0 - self.beta_2 ** t)
            for group in opt.param_groups:
                group["eps"] = eps
        opt.step()
        return value

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

