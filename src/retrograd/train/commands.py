"""The subcommands that run on one process beside `train`: evaluate and predict (a trained
model on data) and lr-find (the learning-rate range test). cli.py parses and dispatches."""

from __future__ import annotations

import json
import os
import sys

from .config import TrainConfig


def given_options(args) -> dict:
    """The TrainConfig options named on the command line, with their values (the other
    arguments are run options: --out, --resume, --workers...)."""
    fields = TrainConfig.__dataclass_fields__
    return {k: v for k, v in vars(args).items() if k in fields and v is not None}


def options(args) -> TrainConfig:
    """The TrainConfig of a command line, None where an option was not given."""
    return TrainConfig(**given_options(args))


def cmd_evaluate(args) -> int:
    from .. import data as D
    from . import metrics
    from .saved_run import load_run

    run = load_run(args.model)
    description = run.description
    if args.data is None or args.data in D.EMBEDDED:
        source = args.data or description["data"]
        split = D.load(source, description.get("label_column"))
        x, y, what = split.x_test, split.y_test, f"the test split of {source}"
    else:
        source = args.data
        x, y = D.load_labeled(source, args.label_column or description.get("label_column"),
                              class_names=description.get("class_names"),
                              n_classes=description["n_classes"])
        what = f"all {len(y)} rows of {source}"
    _check_width(x.shape[1], run.n_features, source)
    probs = run.predict_proba(x)
    report = metrics.classification_report(probs, y)
    result = {"data": source, "n_rows": int(len(y)),
              **{f"{k}": v for k, v in report.items()}}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"accuracy {report['accuracy']:.4f}, balanced accuracy "
              f"{report['balanced_accuracy']:.4f}, NLL {report['nll']:.4f}, ECE "
              f"{report['ece']:.4f} on {what} (model {args.model}; --json for every metric)")
    return 0


def _check_width(n: int, expected: int, source) -> None:
    if n != expected:
        raise ValueError(f"--data {source}: the file has {n} feature columns, the model "
                         f"expects {expected}")


def cmd_predict(args) -> int:
    from .. import data as D
    from .checkpoint import atomic_write
    from .run_folder import check_writable
    from .saved_run import load_run

    run = load_run(args.model)
    if args.output is not None:
        _refuse_run_file(args.output, args.model)
        folder = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(folder):
            raise ValueError(f"--output {args.output}: the folder {folder} does not exist")
        check_writable(folder, "--output")
    x, _ = D.read_features(args.data, run.n_features, header=not args.no_header,
                           label_column=args.label_column
                           or run.description.get("label_column"),
                           class_names=run.description.get("class_names"),
                           n_classes=run.description["n_classes"])
    probs = run.predict_proba(x)
    names = run.class_names
    lines = ["row,prediction," + ",".join(f"p_{name}" for name in names)]
    for i, row in enumerate(probs):
        lines.append(f"{i},{names[int(row.argmax())]}," + ",".join(f"{v:.6g}" for v in row))
    text = "\n".join(lines) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    atomic_write(args.output, lambda f: f.write(text.encode()))
    print(f"{len(probs)} predictions written to {args.output}", file=sys.stderr)
    return 0


def _refuse_run_file(output: str, model: str) -> None:
    """ValueError when `output` would replace a file of the run folder `model`."""
    target, folder = os.path.abspath(output), os.path.abspath(model)
    if os.path.dirname(target) == folder and os.path.exists(target):
        raise ValueError(f"--output {output}: that is a file of the run folder {model}; "
                         "predictions never replace a run's files")


def cmd_lr_find(args) -> int:
    from .. import data as D
    from .. import random as _random
    from ..optim import find_lr
    from . import plots, threads
    from .architectures import build, step_work
    from .job import make_loss, make_optimizer, prepare
    from .run_folder import RunFolder

    if not 0 < args.start_lr < args.end_lr:
        raise ValueError(f"--start-lr {args.start_lr:g} must be positive and below --end-lr "
                         f"{args.end_lr:g}")
    if args.iterations < 2:
        raise ValueError(f"--iterations must be at least 2, got {args.iterations}")
    config = options(args).resolved()
    config.validation_fraction = 0.0  # the range test trains on every training row
    config.early_stopping = None
    name = os.path.basename(os.path.normpath(config.data)) or "data"
    folder = RunFolder(args.out, f"lr-find-{name}", exists_ok=args.overwrite)
    p = prepare(config)
    _random.manual_seed(config.seed)
    model = build(p.layers)
    loader = D.DataLoader(D.TensorDataset(p.x_train, p.y_train), batch_size=config.batch_size,
                          shuffle=True)
    optimizer = make_optimizer(config, model.parameters())
    with threads.limited(config.threads, p.split.n_features, config.hidden, config.batch_size,
                         work=step_work(p.layers, config.batch_size)):
        result = find_lr(model, make_loss(config, p.y_train, p.n_classes), loader,
                         optimizer=optimizer, start_lr=args.start_lr, end_lr=args.end_lr,
                         num_iter=args.iterations)
    folder.create()
    if args.overwrite:
        folder.remove_run_files()
    try:
        folder.write_results(lambda staging: plots.lr_finder(
            result.lrs, result.losses, result.suggestion, os.path.join(staging, "lr_find.png"),
            f"learning-rate range test: {p.split.name}, {config.optimizer}, batch "
            f"{config.batch_size}"))
    except BaseException:
        folder.discard()
        raise
    found = (f"suggested learning rate {result.suggestion:.3g}" if result.suggestion
             else "no suggestion (the loss never fell)")
    print(f"{found}; plot lr_find.png; run folder {folder.path}")
    return 0
