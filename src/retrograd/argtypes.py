"""argparse types shared by the `retrograd` subcommands (cli.py and the plugin commands)."""

from __future__ import annotations

import argparse
import math


def finite_float(text: str) -> float:
    """A finite number: inf and nan are refused like any other bad value."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value
