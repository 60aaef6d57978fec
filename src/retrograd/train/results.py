"""What a finished training run writes: the test metrics (metrics.json), the per-epoch history
(history.csv), the model (model.safetensors + model.json) and the figures."""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np

from ..functions import from_numpy
from . import architectures, metrics, plots
from .fit import History, evaluate
from .saved_run import save_model

HISTORY_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
                   "seconds"]


def describe(config, layers: list[dict] | None = None) -> str:
    """The settings that shape the curves, for figure titles."""
    model = architectures.describe(layers) if layers else \
        f"MLP {'-'.join(map(str, config.hidden))} {config.activation}"
    parts = [model, f"{config.loss}", f"{config.optimizer} lr {config.lr:g}"]
    if config.schedule != "none":
        parts.append(f"{config.schedule} schedule")
    if config.weight_decay:
        parts.append(f"weight decay {config.weight_decay:g}")
    if config.label_smoothing:
        parts.append(f"label smoothing {config.label_smoothing:g}")
    if config.class_weights != "none":
        parts.append(f"{config.class_weights} class weights")
    if config.balanced_sampling:
        parts.append("balanced sampling")
    return ", ".join(parts)


class ResultWriter:
    """Evaluates the kept weights on the test split and writes every result file."""

    def __init__(self, p, model, loss_fn, history: History, kept_epoch: int, seconds: float,
                 processes: int = 1, blas_threads: int | None = None):
        self.p, self.model, self.loss_fn, self.history = p, model, loss_fn, history
        self.kept_epoch, self.seconds = kept_epoch, seconds
        self.processes = processes  # MPI ranks that trained (the last part of a resumed run)
        self.blas_threads = blas_threads  # per process

    def metrics(self) -> tuple[dict, np.ndarray]:
        p, config, history = self.p, self.p.config, self.history
        x_test = p.standardizer.transform(p.split.x_test)
        _, _, logits = evaluate(self.model, self.loss_fn, x_test, p.split.y_test)
        probs = from_numpy(logits).softmax(1).numpy()
        report = metrics.classification_report(probs, p.split.y_test)
        result = {
            "test_accuracy": report["accuracy"],
            "test_balanced_accuracy": report["balanced_accuracy"],
            "test_nll": report["nll"],
            "test_ece": report["ece"],
            "test_per_class_recall": report["per_class_recall"],
            "test_confusion_matrix": report["confusion_matrix"],
            "epochs": len(history.epochs),
            "stopped": history.stopped,
            "signal": history.signal,
            "message": history.message,
            "weights_from_epoch": self.kept_epoch,  # 0: the initial weights
            "best_epoch": history.best_epoch,
            "seconds": self.seconds,
            "processes": self.processes,
            "blas_threads": self.blas_threads,
            "n_train": int(len(p.y_train)),
            "n_validation": 0 if p.y_val is None else int(len(p.y_val)),
            "n_test": int(len(p.split.y_test)),
            "class_names": p.class_names,
            "config": config.to_dict(),
        }
        return result, probs

    def write(self, folder, graph: bool = False) -> dict:
        """Every result file into the run folder (graph: also graph.html)."""
        result, probs = self.metrics()
        p, config = self.p, self.p.config

        def write_all(staging: str) -> None:
            mlp = config.model == "mlp"
            save_model(staging, self.model, {
                "n_features": p.split.n_features, "n_classes": p.n_classes,
                "model": config.model, "sample_shape": list(p.split.sample_shape),
                "layers": p.layers,
                "hidden": list(config.hidden) if mlp else None,
                "activation": config.activation if mlp else None,
                "data": config.data, "label_column": config.label_column,
                "class_names": p.class_names,
                "standardizer": {k: v.tolist() for k, v in p.standardizer.state_dict().items()},
                "config": config.to_dict()})
            _write_text(os.path.join(staging, "metrics.json"), json.dumps(result, indent=2))
            _write_text(os.path.join(staging, "history.csv"), history_csv(self.history))
            settings = describe(config, p.layers)
            name = p.split.name
            plots.learning_curves(self.history, os.path.join(staging, "learning_curves.png"),
                                  f"{name}: {settings}")
            plots.confusion_matrix(np.array(result["test_confusion_matrix"]),
                                   os.path.join(staging, "confusion_matrix.png"),
                                   f"{name} test split ({len(p.split.y_test)} rows)",
                                   p.class_names)
            plots.reliability_diagram(*metrics.calibration_bins(probs, p.split.y_test),
                                      result["test_ece"],
                                      os.path.join(staging, "reliability.png"),
                                      f"{name}: {settings}")
            if graph:
                from ..viz import save_training_graph

                n = min(config.batch_size, len(p.y_train))
                save_training_graph(self.model, self.loss_fn, p.x_train[:n], p.y_train[:n],
                                    os.path.join(staging, "graph.html"),
                                    title=f"{name}: one training batch of {n} rows, {settings}")

        folder.write_results(write_all)
        return result


def history_csv(history: History) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for record in history.epochs:
        writer.writerow(record)
    return buf.getvalue()


def _write_text(path: str, text: str) -> None:
    from .checkpoint import atomic_write

    atomic_write(path, lambda f: f.write(text.encode()))
