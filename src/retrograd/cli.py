"""The `retrograd` command: train, evaluate, predict, lr-find (and rl, course, graph from their
packages).

Bad input never ends in a traceback: every error is one line on stderr naming the bad value
and ending with where to read more, exit status 2, and nothing is written.
Exit status: 0 done, 1 training stopped on a non-finite value, 2 bad input (or a missing
extra), 130 interrupted by Ctrl-C, 143 stopped by SIGTERM.

`mpiexec -n N retrograd train ...` (or `retrograd train --workers N`, which runs that) trains
on N ranks: each rank runs this same main; rank 0 alone prints, and every rank exits with the
same status (docs/distributed.md).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from .argtypes import finite_float

EXIT_NON_FINITE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

# Subcommands that live beside their subsystem: each module has `register(subparsers)`, which adds
# its parser with `set_defaults(handler=fn)`, fn(args) -> exit status. Their imports stay lazy.
PLUGIN_COMMANDS = tuple(
    name for name in ("retrograd.rl.command", "retrograd.course.command",
                      "retrograd.viz.command")
    if importlib.util.find_spec(name.rpartition(".")[0]) is not None
    and importlib.util.find_spec(name) is not None)

# what each subcommand needs beyond NumPy: pyproject's extras, and a module of each to look for
EXTRAS = {"train": ("sklearn", "mnist1d", "tqdm", "matplotlib"),
          "rl": ("gymnasium", "tqdm", "matplotlib")}
COMMAND_EXTRA = {"train": "train", "evaluate": "train", "predict": "train", "lr-find": "train",
                 "course": "train", "graph": "train", "rl": "rl"}


class UsageError(ValueError):
    """Bad command-line input (exit 2)."""


class MissingExtra(ImportError):
    """A command whose optional packages are not installed: its one line, printed as is."""


BAD_INPUT = (ValueError, TypeError, KeyError, OSError, ImportError)


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage dump) and exit status 2."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message}")


def _with_default(text: str, default) -> str:
    return f"{text} (default: {default})"


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, metavar="NAME|PATH",
                   help="digits, mnist1d, spirals, imbalanced-spirals, or a path: a .csv file "
                        "(header row; the label in the last column, numbers or class names), "
                        "an .npz file (x, y) or a folder of MNIST IDX files (default: digits)")
    p.add_argument("--label-column", default=None, metavar="NAME",
                   help="the CSV column holding the label (default: the last one)")


def _add_model_options(p: argparse.ArgumentParser, *, training: bool) -> None:
    """The options that define a model and its training; `training` adds those that only a
    full training run uses (epochs, schedules, early stopping...)."""
    from .registry import LOSSES, MODELS, OPTIMIZERS, SCHEDULES
    from .train.config import ACTIVATIONS, CLASS_WEIGHTS, TrainConfig

    d = TrainConfig()
    _add_data_options(p)
    p.add_argument("--model", default=None, choices=MODELS,
                   help="mlp, or cnn: convolutions with BatchNorm, for data with an image "
                        "shape (digits, mnist1d, IDX folders, .npz of images); its "
                        "architecture comes from the dataset's recipe (default: mlp)")
    p.add_argument("--hidden", type=int, nargs="+", default=None, metavar="H",
                   help=_with_default("hidden layer sizes (mlp)", " ".join(map(str, d.hidden))))
    p.add_argument("--activation", default=None, choices=ACTIVATIONS,
                   help=_with_default("hidden activation", d.activation))
    p.add_argument("--loss", default=None, choices=tuple(LOSSES),
                   help=_with_default("loss on the softmax output", d.loss))
    p.add_argument("--label-smoothing", type=finite_float, default=None, metavar="E",
                   help=_with_default("label smoothing in [0, 1] (cross-entropy, mse)",
                                      d.label_smoothing))
    p.add_argument("--class-weights", default=None, choices=CLASS_WEIGHTS,
                   help=_with_default("per-class loss weights: inverse frequency, or the "
                                      "effective number of samples", d.class_weights))
    p.add_argument("--beta", type=finite_float, default=None, metavar="B",
                   help=_with_default("beta in [0, 1) of the effective-number weights", d.beta))
    p.add_argument("--gamma", type=finite_float, default=None, metavar="G",
                   help=_with_default("focal loss gamma >= 0", d.gamma))
    p.add_argument("--balanced-sampling", action="store_true", default=None,
                   help="each draw picks a class uniformly, then one of its samples")
    p.add_argument("--optimizer", default=None, choices=tuple(OPTIMIZERS),
                   help="optimizer (default: the dataset's recipe; adam for your own data)")
    if training:
        p.add_argument("--lr", type=finite_float, default=None, metavar="LR",
                       help="learning rate > 0 (default: the recipe's, or the optimizer's own: "
                            + ", ".join(f"{k} {v.default_lr:g}" for k, v in OPTIMIZERS.items())
                            + ")")
    p.add_argument("--momentum", type=finite_float, default=None, metavar="M",
                   help=_with_default("momentum in [0, 1) (sgd, rmsprop)", d.momentum))
    p.add_argument("--weight-decay", type=finite_float, default=None, metavar="W",
                   help="L2 weight decay >= 0 (default: the recipe's; 0 for your own data)")
    p.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="mini-batch size (default: the recipe's; 64 for your own data)")
    if training:
        p.add_argument("--schedule", default=None, choices=tuple(SCHEDULES),
                       help="learning-rate schedule over the epochs (default: the recipe's)")
        p.add_argument("--epochs", type=int, default=None, metavar="N",
                       help="epochs (default: the recipe's; 30 for your own data)")
        p.add_argument("--validation-fraction", type=finite_float, default=None, metavar="F",
                       help="share of the training split held out for validation, in [0, 0.5); "
                            "0 trains on all of it (default: the recipe's; 0.1 for your own "
                            "data)")
        p.add_argument("--early-stopping", type=int, default=None, metavar="K",
                       help="stop after K epochs without a lower validation loss and keep the "
                            "best epoch's weights (default: off)")
        p.add_argument("--clip-grad", type=finite_float, default=None, metavar="NORM",
                       help="clip the gradients' joint L2 norm to NORM (default: off)")
        p.add_argument("--no-compile", dest="compile", action="store_false", default=None,
                       help="run every step eagerly instead of as a compiled step "
                            "(retrograd.compile: the same results, faster)")
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help=_with_default("seed of the weights, shuffles and splits", d.seed))
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="BLAS threads (default: 1 for small models, every core for large ones)")


def _add_output_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--out", default=None, metavar="DIR",
                   help=f"output folder (default: a new runs/<data>-<time> folder); {what}")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (default: refuse)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="retrograd",
                     description="retrograd: train and evaluate classifiers, train policies by "
                                 "REINFORCE, run the course's experiments.")
    parser.add_argument("--version", action="version", version=f"retrograd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                metavar="COMMAND")

    train = sub.add_parser(
        "train", help="train a classifier (an MLP or a CNN) and write a run folder",
        description="Train a classifier (--model mlp or cnn) on embedded or your own data and "
                    "write a run "
                    "folder: metrics.json, history.csv, model.safetensors + model.json, "
                    "checkpoint.npz and figures. Options you leave out come from the dataset's "
                    "recipe (printed at the start).")
    _add_model_options(train, training=True)
    _add_output_options(train, "an existing run is never replaced unless --overwrite")
    train.add_argument("--graph", action="store_true",
                       help="also write graph.html: the computation graph of one training "
                            "batch, with a stepper through its backward pass (default: off)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint, with its saved "
                            "settings (only --epochs may change); with any number of "
                            "processes")
    train.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"),
                       help="where to train: cpu, cuda (a GPU through CuPy), or auto (the GPU "
                            "when one is present) (default: cpu)")
    train.add_argument("--workers", type=int, default=None, metavar="N",
                       help="train on N MPI processes (runs mpiexec -n N; needs the mpi "
                            "extra): the global batch stays --batch-size, N shards of it "
                            "(default: 1, or the number of processes mpiexec started)")

    evaluate = sub.add_parser(
        "evaluate", help="metrics of a trained model",
        description="Score a trained model: on the test split of the data it was trained on, "
                    "or on a whole file of labeled data you give. Prints one summary line "
                    "(--json: every metric).")
    evaluate.add_argument("--model", required=True, metavar="DIR",
                          help="a run folder written by `retrograd train`")
    _add_data_options(evaluate)
    evaluate.add_argument("--json", action="store_true",
                          help="print every metric as JSON instead of one line")

    predict = sub.add_parser(
        "predict", help="class probabilities of a trained model, as CSV",
        description="Predict the class of every row of a file with a trained model; writes "
                    "CSV (row, prediction, one probability column per class) to standard "
                    "output or --output.")
    predict.add_argument("--model", required=True, metavar="DIR",
                         help="a run folder written by `retrograd train`")
    predict.add_argument("--data", required=True, metavar="PATH",
                         help=".csv with a header row (the model's feature columns, optionally "
                              "with the label column) or .npz with x")
    predict.add_argument("--label-column", default=None, metavar="NAME",
                         help="the CSV column holding a label, if any (default: a column beyond "
                              "the model's features is the label)")
    predict.add_argument("--no-header", action="store_true",
                         help="the CSV file has no header row: every row is data")
    predict.add_argument("--output", default=None, metavar="FILE",
                         help="write the CSV here (default: standard output); never a file of "
                              "the run folder")

    lr_find = sub.add_parser(
        "lr-find", help="learning-rate range test: a plot and a suggested learning rate",
        description="The learning-rate range test (Smith 2017): train for --iterations steps "
                    "with the learning rate growing from --start-lr to --end-lr, plot the "
                    "loss and suggest a rate.")
    _add_model_options(lr_find, training=False)
    _add_output_options(lr_find, "an existing run is never replaced unless --overwrite")
    lr_find.add_argument("--start-lr", type=finite_float, default=1e-6, metavar="LR",
                         help=_with_default("first learning rate > 0", 1e-6))
    lr_find.add_argument("--end-lr", type=finite_float, default=10.0, metavar="LR",
                         help=_with_default("last learning rate, above --start-lr", 10.0))
    lr_find.add_argument("--iterations", type=int, default=100, metavar="N",
                         help=_with_default("steps, at least 2", 100))

    for name in PLUGIN_COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def cmd_train(args) -> int:
    from . import distributed as dist
    from .train.job import run

    if args.workers is not None and args.workers > 1 and not dist.launched_by_mpi():
        return _run_workers(args.workers, args.argv)
    from .train.commands import given_options, options

    device = _training_device(args.device, log=lambda m: print(m, file=sys.stderr))
    result = run(options(args), given=given_options(args), out=args.out, resume=args.resume,
                 overwrite=args.overwrite, progress=not args.no_progress, graph=args.graph,
                 log=lambda m: print(m, file=sys.stderr), device=device)
    code = _train_status(result)
    if dist.get_rank() == 0:
        _print_train_result(result)
    return code


def _training_device(choice: str, log) -> str:
    """The device --device names: cuda refused in one line without a GPU; auto takes the GPU
    when there is one, and says so first."""
    from . import cuda

    if choice == "cpu":
        return "cpu"
    if cuda.is_available():
        if choice == "auto":
            log("device: cuda:0 (--device auto found a GPU)")
        return "cuda:0"
    if choice == "cuda":
        raise ValueError("--device cuda: no CUDA GPU is available (it needs CuPy and an NVIDIA "
                         "GPU; retrograd.cuda.is_available() is False)")
    return "cpu"


def _run_workers(workers: int, argv: list[str]) -> int:
    """Run `mpiexec -n workers python -m retrograd <argv>` (the same command line: each rank
    sees --workers equal to its world size and trains) and return its exit status; a rank
    that dies is reported in one line (distributed/supervise.py)."""
    from .distributed import mpiexec_argv
    from .distributed.supervise import guarded, run_workers
    from .distributed.world import MPI_EXTRA_HINT

    if importlib.util.find_spec("mpi4py") is None:
        raise ImportError(f"--workers {workers} runs on several processes, which needs "
                          f"mpi4py: {MPI_EXTRA_HINT}")
    # ImportError when there is no mpiexec
    command = mpiexec_argv(workers, guarded(["-m", "retrograd", *argv]))
    sys.stdout.flush()
    sys.stderr.flush()
    return run_workers(command)


def _train_status(result: dict) -> int:
    if result["note"]:
        return 0
    stopped = result["stopped"]
    if stopped == "interrupted":
        return EXIT_TERMINATED if result.get("signal") == "SIGTERM" else EXIT_INTERRUPTED
    return EXIT_NON_FINITE if stopped == "non-finite" else 0


def _print_train_result(result: dict) -> None:
    if result["note"]:
        print(f"{result['note']}; run folder {result['out']}")
        return
    ranks = f", {result['processes']} processes" if result.get("processes", 1) > 1 else ""
    print(f"test accuracy {result['test_accuracy']:.4f}, balanced accuracy "
          f"{result['test_balanced_accuracy']:.4f}, NLL {result['test_nll']:.4f}, "
          f"ECE {result['test_ece']:.4f} after {result['epochs']} epochs "
          f"({result['seconds']:.1f} s{ranks}; {_stopped_words(result)}); run folder "
          f"{result['out']}")


def _stopped_words(result: dict) -> str:
    kept = result["weights_from_epoch"]
    weights = f"weights of epoch {kept}" if kept else "the initial weights"
    return {"completed": f"{weights}", "early-stopping": f"stopped early; {weights}",
            "non-finite": f"stopped on a non-finite value; {weights}",
            "interrupted": f"interrupted; {weights}"}.get(result["stopped"], weights)


def _command(name: str):
    """The handler of a one-process command, imported when it runs."""
    def handler(args) -> int:
        from .train import commands

        return getattr(commands, name)(args)
    return handler


COMMANDS = {"train": cmd_train, "evaluate": _command("cmd_evaluate"),
            "predict": _command("cmd_predict"), "lr-find": _command("cmd_lr_find")}


def missing_extra(command: str) -> str | None:
    """One line naming the extra to install when `command` lacks one of its packages."""
    extra = COMMAND_EXTRA.get(command)
    if extra is None:
        return None
    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (f"retrograd {command} needs the '{extra}' extra (missing: {', '.join(missing)}): "
            f"pip install 'retrograd[{extra}]'")


def _one_line(message: str, command: str | None) -> str:
    text = " ".join(str(message).split())  # never more than one line
    where = f"retrograd {command} --help" if command else "retrograd --help"
    return f"{text} (see {where})"


def _parse(argv: list[str]):
    """The parsed command line (args.argv: argv itself); UsageError or MissingExtra."""
    args = build_parser().parse_args(argv)
    need = missing_extra(args.command)
    if need:
        raise MissingExtra(f"retrograd: error: {need}")
    args.argv = argv
    workers = getattr(args, "workers", None)
    if workers is not None:
        from . import distributed as dist

        if workers < 1:
            raise ValueError(f"--workers must be a positive integer, got {workers}")
        if dist.launched_by_mpi() and workers != dist.get_world_size():
            size = dist.get_world_size()
            raise ValueError(f"--workers {workers}: this job already runs as {size} MPI "
                             f"process{'es' if size > 1 else ''} (mpiexec -n {size}); give "
                             f"--workers {size} or leave it out")
    return args


def _error_line(exc: BaseException, command: str | None) -> str:
    """The one stderr line of a bad-input error."""
    if isinstance(exc, MissingExtra):
        return str(exc)
    if isinstance(exc, UsageError):
        return _one_line(exc, command)
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    return _one_line(f"retrograd {command or ''}: error: {message}", command)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def main(argv=None) -> int:
    from . import distributed as dist
    from .train.interrupts import Terminated, sigterm_as_interrupt

    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if dist.launched_by_mpi():
        try:
            dist.init()  # first: a rank that fails before init() leaves its peers waiting
        except ImportError as exc:  # launched as several processes without mpi4py
            _stderr(_error_line(exc, command))
            return EXIT_BAD_INPUT
        if dist.get_world_size() > 1:
            from .train.ranks import run_command

            return run_command(argv, command, _parse, cmd_train, _error_line)
    try:
        with sigterm_as_interrupt():
            args = _parse(argv)
            command = args.command
            handler = getattr(args, "handler", None) or COMMANDS[command]
            return handler(args)
    except BAD_INPUT as exc:
        _stderr(_error_line(exc, command))
    except Terminated:
        _stderr("retrograd: stopped by SIGTERM")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        _stderr("retrograd: interrupted")
        return EXIT_INTERRUPTED
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
