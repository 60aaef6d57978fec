"""Numbers as the report prints them: a few significant digits, powers of ten written 10⁻⁷,
percentages with a % sign, lists cut short with a count. Used by the experiments to build their
"measured" tables (label, value-with-unit) beside the raw `measured` dict of claims.json."""

from __future__ import annotations

import math

_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076"
                             "\u2077\u2078\u2079")


def sci(x: float, digits: int = 2) -> str:
    """x as m × 10ⁿ with `digits` significant digits (0 as 0)."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return num(x)
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    mantissa = mantissa.replace("-", "\u2212")
    return f"{mantissa} \u00d7 10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def num(x, digits: int = 4) -> str:
    """A number to `digits` significant digits; very small or large ones in powers of ten."""
    if isinstance(x, str):  # claims.json keeps non-finite floats as "inf" / "nan"
        return {"inf": "\u221e", "-inf": "\u2212\u221e"}.get(x, x)
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}".replace(",", "\u2009")  # thin space between thousands
    x = float(x)
    if not math.isfinite(x):
        return "\u221e" if x > 0 else ("\u2212\u221e" if x < 0 else "nan")
    if x != 0 and not 1e-3 <= abs(x) < 1e6:
        return sci(x, min(digits, 2))
    if abs(x) >= 10 ** digits:  # whole digits only, grouped: 18 283, not 1.828e+04
        return num(int(round(x)))
    return f"{x:.{digits}g}".replace("-", "\u2212")


def pct(x: float, digits: int = 1) -> str:
    """A fraction as a percentage: 0.952 -> 95.2 %."""
    return f"{100 * float(x):.{digits}f} %"


def listing(values, fmt=num, limit: int = 12) -> str:
    """Comma-separated values, the first `limit` of a longer list and a count."""
    values = list(values)
    shown = ", ".join(fmt(v) for v in values[:limit])
    return shown + (f", \u2026 ({len(values)} values)" if len(values) > limit else "")


def arrow(a, b, fmt=num) -> str:
    """'a → b', for a before/after pair."""
    return f"{fmt(a)} \u2192 {fmt(b)}"
