"""The `retrograd` command: train, evaluate, predict, lr-find (and rl, course from their packages).

Bad input never ends in a traceback: every error is one line on stderr naming the bad value,
exit status 2, and nothing is written.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys

import numpy as np

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


# Subcommands that live beside their subsystem: each module has `register(subparsers)`, which adds
# its parser with `set_defaults(handler=fn)`, fn(args) -> exit status. Their imports stay lazy.
PLUGIN_COMMANDS = tuple(
    name for name in ("retrograd.rl.command", "retrograd.course.command", "retrograd.viz.command")
    if importlib.util.find_spec(name.rpartition(".")[0]) is not None
    and importlib.util.find_spec(name) is not None)


class UsageError(Exception):
    """Bad command-line input (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage dump) and exit status 2."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    return value


def _add_model_options(p: argparse.ArgumentParser) -> None:
    from .train.job import ACTIVATIONS, CLASS_WEIGHTS, LOSSES, OPTIMIZERS, SCHEDULES

    p.add_argument("--data", default="digits",
                   help="digits, mnist1d, spirals, imbalanced-spirals, or a path: a .csv file, "
                        "an .npz file (x, y) or a folder of IDX files (default: digits)")
    p.add_argument("--label-column", default=None,
                   help="CSV column holding the label (default: the last one)")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256],
                   help="hidden layer sizes (default: 256 256)")
    p.add_argument("--activation", default="relu", metavar="|".join(ACTIVATIONS))
    p.add_argument("--loss", default="cross-entropy", metavar="|".join(LOSSES))
    p.add_argument("--label-smoothing", type=_positive_float, default=None, metavar="E",
                   help="cross-entropy label smoothing (default 0.1)")
    p.add_argument("--class-weights", default="none", metavar="|".join(CLASS_WEIGHTS))
    p.add_argument("--beta", type=_positive_float, default=0.999,
                   help="beta of the effective-number class weights (default 0.999)")
    p.add_argument("--balanced-sampling", action="store_true",
                   help="sample a class uniformly, then a sample of it")
    p.add_argument("--gamma", type=_positive_float, default=2.0, metavar="G",
                   help="focal loss gamma (default 2)")
    p.add_argument("--optimizer", default="adam", metavar="|".join(OPTIMIZERS))
    p.add_argument("--lr", type=_positive_float, default=None, metavar="LR",
                   help="learning rate (default: adam 1e-3, sgd 0.05, ...)")
    p.add_argument("--momentum", type=_positive_float, default=0.9, metavar="M")
    p.add_argument("--weight-decay", type=_positive_float, default=0.0, metavar="W")
    p.add_argument("--schedule", default="none", metavar="|".join(SCHEDULES))
    p.add_argument("--epochs", type=int, default=30, metavar="N")
    p.add_argument("--batch-size", type=int, default=64, metavar="B")
    p.add_argument("--validation-fraction", type=_positive_float, default=0.1, metavar="F",
                   help="share of the training split held out for validation; 0 trains on "
                        "all of it (default 0.1)")
    p.add_argument("--early-stopping", type=int, default=None, metavar="K",
                   help="stop after K epochs without a lower validation loss")
    p.add_argument("--clip-grad", type=_positive_float, default=None, metavar="NORM")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: runs/<data>-<time>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="retrograd",
                     description="retrograd: train and evaluate classifiers, train policies by "
                                 "REINFORCE, run the course's experiments.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train an MLP classifier and write a run folder")
    _add_model_options(train)
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint")

    evaluate = sub.add_parser("evaluate", help="metrics of a trained model on a test split")
    evaluate.add_argument("--model", required=True, metavar="DIR")
    evaluate.add_argument("--data", default=None, help="default: the data it was trained on")
    evaluate.add_argument("--label-column", default=None)

    predict = sub.add_parser("predict", help="predictions of a trained model, as CSV")
    predict.add_argument("--model", required=True, metavar="DIR")
    predict.add_argument("--data", required=True, metavar="PATH",
                         help=".csv (with or without a label column) or .npz (x)")
    predict.add_argument("--output", default=None, metavar="FILE",
                         help="default: DIR/predictions.csv")

    lr_find = sub.add_parser("lr-find", help="learning-rate range test (plot + suggestion)")
    _add_model_options(lr_find)
    lr_find.add_argument("--start-lr", type=_positive_float, default=1e-6)
    lr_find.add_argument("--end-lr", type=_positive_float, default=10.0)
    lr_find.add_argument("--iterations", type=int, default=100)

    for name in PLUGIN_COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _config(args):
    from .train.job import TrainConfig

    return TrainConfig(
        data=args.data, label_column=args.label_column, hidden=args.hidden,
        activation=args.activation, loss=args.loss, label_smoothing=args.label_smoothing,
        class_weights=args.class_weights, beta=args.beta,
        balanced_sampling=args.balanced_sampling, gamma=args.gamma, optimizer=args.optimizer,
        lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
        schedule=args.schedule, epochs=args.epochs, batch_size=args.batch_size,
        validation_fraction=args.validation_fraction, early_stopping=args.early_stopping,
        clip_grad=args.clip_grad, seed=args.seed,
        out=args.out, progress=not args.no_progress)


def cmd_train(args) -> int:
    from .train.job import run

    result = run(_config(args), resume=args.resume, log=lambda m: print(m, file=sys.stderr))
    out = result["config"]["out"] or ""
    print(f"test accuracy {result['test_accuracy']:.4f}, balanced accuracy "
          f"{result['test_balanced_accuracy']:.4f}, NLL {result['test_nll']:.4f}, "
          f"ECE {result['test_ece']:.4f} after {result['epochs']} epochs "
          f"({result['seconds']:.1f} s){'; run folder ' + out if out else ''}")
    return EXIT_INTERRUPTED if result["stopped"] == "interrupted" else 0


def cmd_evaluate(args) -> int:
    from . import data as D
    from .functions import tensor
    from .train import metrics
    from .train.job import load_model

    model, description, standardizer = load_model(args.model)
    split = D.load(args.data or description["data"], args.label_column
                   or description.get("label_column"))
    _check_features(split.x_test.shape[1], description, args.data)
    probs = model(tensor(standardizer.transform(split.x_test))).softmax(1).numpy()
    report = metrics.classification_report(probs, split.y_test)
    print(json.dumps({"data": args.data or description["data"], "n_test": len(split.y_test),
                      **{f"test_{k}": v for k, v in report.items()}}, indent=2))
    return 0


def _check_features(n: int, description: dict, source) -> None:
    if n != description["n_features"]:
        raise ValueError(f"--data {source}: {n} features, the model expects "
                         f"{description['n_features']}")


def _features_for_prediction(path: str, n_features: int) -> np.ndarray:
    from .data import formats

    if not os.path.exists(path):
        raise formats.DataError(f"no such file: {path}")
    if path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as data:
                if "x" not in data.files:
                    raise formats.DataError(f"{path}: an NPZ file needs an array 'x'")
                return formats._features(data["x"], path)
        except (OSError, ValueError) as exc:
            raise formats.DataError(f"cannot read NPZ file {path}: {exc}") from None
    if path.endswith(".csv"):
        with open(path) as f:
            n_columns = len(f.readline().split(","))
        if n_columns == n_features:  # no label column: read all columns as features
            x, _ = formats.read_csv_features(path)
            return x
        x, _ = formats.read_csv(path)
        return x
    raise formats.DataError(f"{path}: expected a .csv or .npz file")


def cmd_predict(args) -> int:
    from .functions import tensor
    from .train.checkpoint import atomic_write
    from .train.job import load_model

    model, description, standardizer = load_model(args.model)
    x = _features_for_prediction(args.data, description["n_features"])
    _check_features(x.shape[1], description, args.data)
    output = args.output or os.path.join(args.model, "predictions.csv")
    from .train.job import check_writable

    check_writable(os.path.dirname(os.path.abspath(output)))
    probs = model(tensor(standardizer.transform(x))).softmax(1).numpy()
    lines = ["row,prediction," + ",".join(f"p{c}" for c in range(probs.shape[1]))]
    for i, row in enumerate(probs):
        lines.append(f"{i},{int(row.argmax())}," + ",".join(f"{v:.6g}" for v in row))
    atomic_write(output, lambda f: f.write(("\n".join(lines) + "\n").encode()))
    print(f"{len(probs)} predictions written to {output}")
    return 0


def cmd_lr_find(args) -> int:
    from . import data as D
    from . import random as _random
    from .optim import find_lr
    from .train import plots
    from .train.job import build_mlp, check_writable, make_loss, make_optimizer, prepare

    config = _config(args)
    if not 0 < args.start_lr < args.end_lr:
        raise ValueError(f"--start-lr {args.start_lr} must be positive and below --end-lr "
                         f"{args.end_lr}")
    if args.iterations < 2:
        raise ValueError(f"--iterations must be at least 2, got {args.iterations}")
    p = prepare(config)
    check_writable(p.out)
    _random.manual_seed(config.seed)
    model = build_mlp(p.split.n_features, config.hidden, p.split.n_classes, config.activation)
    loader = D.DataLoader(D.TensorDataset(p.x_train, p.y_train), batch_size=config.batch_size,
                          shuffle=True)
    optimizer = make_optimizer(config, model.parameters())
    result = find_lr(model, make_loss(config, p.y_train, p.split.n_classes), loader,
                     optimizer=optimizer, start_lr=args.start_lr, end_lr=args.end_lr,
                     num_iter=args.iterations)
    os.makedirs(p.out, exist_ok=True)
    path = os.path.join(p.out, "lr_find.png")
    plots.lr_finder(result.lrs, result.losses, result.suggestion, path)
    print(f"suggested learning rate {result.suggestion:.3g} (plot: {path})"
          if result.suggestion else f"no suggestion (the loss never fell); plot: {path}")
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "lr-find": cmd_lr_find}


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        handler = getattr(args, "handler", None) or COMMANDS[args.command]
        return handler(args)
    except UsageError as exc:
        print(f"{exc}", file=sys.stderr)
    except (ValueError, TypeError, KeyError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"retrograd: error: {message}", file=sys.stderr)
    except KeyboardInterrupt:
        print("retrograd: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
