"""`retrograd graph --model DIR [--out FILE] [--batch-size N]`: draw a trained run's model on one
batch of its data, as the stepper page (.html), DOT (.dot) or SVG (.svg).

Registered by retrograd.cli (register(subparsers)); errors become one line and exit status 2.
"""

from __future__ import annotations

import os


def register(subparsers) -> None:
    """Add the `graph` subcommand to the retrograd command line."""
    p = subparsers.add_parser(
        "graph", help="draw a trained model's computation graph and step through backprop",
        description="Run one batch of a trained run's data through its model and loss, and "
                    "write the recorded graph: an offline HTML page that steps through the "
                    "forward and the backward pass (.html), or DOT (.dot) or SVG (.svg).")
    p.add_argument("--model", required=True, metavar="DIR",
                   help="a run folder written by `retrograd train`")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="output file, .html, .dot or .svg (default: DIR/graph.html)")
    p.add_argument("--batch-size", type=int, default=4, metavar="N",
                   help="samples in the batch drawn (default 4: small enough to read)")
    p.set_defaults(handler=cmd_graph)


def cmd_graph(args) -> int:
    from .. import data as D
    from ..train.saved_run import load_run
    from . import save_training_graph

    out = args.out or os.path.join(args.model, "graph.html")
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".html", ".htm", ".dot", ".gv", ".svg"):
        raise ValueError(f"--out: unknown extension {ext or '(none)'!r} in {out!r}; expected "
                         ".html, .dot or .svg")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    run = load_run(args.model)
    description = run.description
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ValueError(f"--out: folder {folder} does not exist")
    split = D.load(description["data"], description.get("label_column"))
    x = run.standardize(split.x_train[: args.batch_size])
    y = split.y_train[: args.batch_size]
    from ..train.architectures import describe

    title = (f"{description['data']}: {describe(run.layers)}, one batch of "
             f"{len(y)}, forward and backward")
    save_training_graph(run.model, _loss(description, split), x, y, out, title=title)
    print(f"graph of {args.model} on {len(y)} samples: {out}")
    return 0


def _loss(description: dict, split):
    """The run's own loss (its saved config: loss, smoothing, gamma, class weights)."""
    from ..train.config import TrainConfig
    from ..train.job import make_loss

    config = TrainConfig(**description["config"])
    return make_loss(config, split.y_train, description["n_classes"])
