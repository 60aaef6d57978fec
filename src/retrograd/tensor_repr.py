"""How a tensor prints: PyTorch's layout, so that a learner comparing the two sees the same text.

The rules are torch's (torch/_tensor_str.py): floats print with 4 decimals, or as "2." when
every finite non-zero value is an integer, or in scientific notation when the values span more
than three decades (or reach 1e8, or, for non-integers, fall below 1e-4); every element takes
the widest element's width; rows wrap at 80 columns; above 1000 elements only the first and
last 3 of each dimension print, around "...". The host copy is formatted as Python numbers
(printing is host-side work on any device, and at most 1000 numbers are looked at).
"""

from __future__ import annotations

import math

PRECISION = 4
THRESHOLD = 1000  # more elements than this print summarized
EDGE_ITEMS = 3
LINE_WIDTH = 80


class _Formatter:
    """One format for every element of an array, chosen from the values (as torch's)."""

    def __init__(self, values: list, floating: bool):
        self.floating = floating
        self.int_mode, self.sci_mode, self.width = True, False, 1
        if not floating:
            self.width = max([1] + [len(str(v)) for v in values])
            return
        finite = [float(v) for v in values if math.isfinite(v) and v != 0]
        if not finite:
            return
        low, high = min(map(abs, finite)), max(map(abs, finite))
        self.int_mode = all(v == math.ceil(v) for v in finite)
        self.sci_mode = high / low > 1000.0 or high > 1.0e8
        if not self.int_mode:
            self.sci_mode = self.sci_mode or low < 1.0e-4
        if self.sci_mode:
            self.width = max(len(f"{v:.{PRECISION}e}") for v in finite)
        elif self.int_mode:
            self.width = max(len(f"{v:.0f}") + 1 for v in finite)
        else:
            self.width = max(len(f"{v:.{PRECISION}f}") for v in finite)

    def format(self, value) -> str:
        if not self.floating:
            text = str(value)
        elif self.sci_mode:
            text = f"{value:.{PRECISION}e}"
        elif self.int_mode:
            text = f"{value:.0f}" + ("" if math.isinf(value) or math.isnan(value) else ".")
        else:
            text = f"{value:.{PRECISION}f}"
        return text.rjust(self.width)


def _shown(values) -> list:
    """The numbers a print shows: all of them, or when summarized the first and last
    EDGE_ITEMS along each dimension."""
    if values.ndim == 0:
        return [values.item()]
    if values.ndim == 1:
        if len(values) > 2 * EDGE_ITEMS:
            return values[:EDGE_ITEMS].tolist() + values[-EDGE_ITEMS:].tolist()
        return values.tolist()
    rows = range(len(values))
    if len(values) > 2 * EDGE_ITEMS:
        rows = [*range(EDGE_ITEMS), *range(len(values) - EDGE_ITEMS, len(values))]
    return [v for i in rows for v in _shown(values[i])]


def _vector(values, indent: int, summarize: bool, fmt: _Formatter) -> str:
    per_line = max(1, (LINE_WIDTH - indent) // (fmt.width + 2))
    if summarize and len(values) > 2 * EDGE_ITEMS:
        items = ([fmt.format(v) for v in values[:EDGE_ITEMS].tolist()] + [" ..."]
                 + [fmt.format(v) for v in values[-EDGE_ITEMS:].tolist()])
    else:
        items = [fmt.format(v) for v in values.tolist()]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested(values, indent: int, summarize: bool, fmt: _Formatter) -> str:
    if values.ndim == 0:
        return fmt.format(values.item())
    if values.ndim == 1:
        return _vector(values, indent, summarize, fmt)
    if summarize and len(values) > 2 * EDGE_ITEMS:
        rows = ([_nested(values[i], indent + 1, summarize, fmt) for i in range(EDGE_ITEMS)]
                + ["..."] + [_nested(values[i], indent + 1, summarize, fmt)
                             for i in range(len(values) - EDGE_ITEMS, len(values))])
    else:
        rows = [_nested(row, indent + 1, summarize, fmt) for row in values]
    return "[" + ("," + "\n" * (values.ndim - 1) + " " * (indent + 1)).join(rows) + "]"


def format_tensor(values, suffixes: list[str], prefix: str = "tensor(") -> str:
    """prefix + the values as torch prints them + ", suffix" for each suffix + ")": a suffix
    that would pass LINE_WIDTH goes on a line of its own, aligned under the values."""
    indent = len(prefix)
    if values.size == 0:
        body = "[]"
        if values.shape != (0,):  # after the device, as torch has it
            at = int(bool(suffixes) and suffixes[0].startswith("device="))
            suffixes = [*suffixes[:at], f"size={tuple(values.shape)}", *suffixes[at:]]
    else:
        summarize = values.size > THRESHOLD
        shown = _shown(values) if summarize else values.ravel().tolist()
        fmt = _Formatter(shown, values.dtype.kind in "fc")
        body = _nested(values, indent, summarize, fmt)
    text = prefix + body
    parts, last_line = [text], len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line + len(suffix) + 2 > LINE_WIDTH:
            parts.append(",\n" + " " * indent + suffix)
            last_line = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line += len(suffix) + 2
    return "".join(parts) + ")"
