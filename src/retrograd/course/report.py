"""report.html: one self-contained page (inline CSS, figures as base64 PNG data URIs, no scripts,
no network) with a summary table and, per claim, its formula, numbers, verdict and figure."""

from __future__ import annotations

import base64
import json
import os
import platform
from html import escape

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 0.8rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.holds { color: #0a6b2d; font-weight: bold; } .fails { color: #b00020; font-weight: bold; }
section { border-top: 2px solid #ddd; margin-top: 2rem; padding-top: 0.5rem; }
pre { background: #f7f7f7; padding: 0.5rem 0.8rem; overflow-x: auto; white-space: pre-wrap; }
img { max-width: 100%; border: 1px solid #eee; }
td.value { font-family: ui-monospace, monospace; font-size: 0.85rem; }
"""

_MAX_ITEMS = 12  # longer lists (curves) are shortened on the page; claims.json keeps them whole


def render_report(entries: list[dict], out_dir: str, meta: dict | None = None) -> str:
    """The HTML page for the claims.json entries; figures are read from out_dir."""
    meta = meta or {}
    n_hold = sum(1 for e in entries if e["holds"])
    mode = "quick" if meta.get("quick") else "full"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>retrograd: the course, executable</title>",
             f"<style>{_CSS}</style></head><body>",
             "<h1>The course, executable</h1>",
             f'<p class="meta">{len(entries)} claims, {n_hold} holding, '
             f"{len(entries) - n_hold} not holding &middot; {mode} run"
             + (f" started {escape(str(meta['started']))}" if "started" in meta else "")
             + (f", {meta['seconds']:.1f} s" if "seconds" in meta else "")
             + (f" &middot; <b>{escape(meta['interrupted'])}</b>" if "interrupted" in meta else "")
             + f" &middot; {escape(_versions())}</p>",
             _summary_table(entries)]
    parts += [_section(e, out_dir) for e in entries]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(entries: list[dict], out_dir: str, meta: dict | None = None) -> str:
    """Write out_dir/report.html atomically; returns its path."""
    from ..train.checkpoint import atomic_write
    from .runner import write_shared

    path = os.path.join(out_dir, "report.html")
    text = render_report(entries, out_dir, meta)
    atomic_write(path, lambda f: write_shared(f, text))
    return path


def _versions() -> str:
    import numpy as np

    from .. import __version__

    return f"retrograd {__version__}, NumPy {np.__version__}, Python {platform.python_version()}"


def _verdict(entry: dict) -> str:
    if entry["holds"]:
        return '<span class="holds">holds</span>'
    word = "crashed" if entry.get("error") else "does not hold"
    return f'<span class="fails">{word}</span>'


def _summary_table(entries: list[dict]) -> str:
    rows = ["<table><tr><th>#</th><th>claim</th><th>verdict</th><th>seconds</th></tr>"]
    for e in entries:
        rows.append(f'<tr><td>{e["number"]}</td><td><a href="#{escape(e["id"])}">'
                    f'{escape(e["claim"])}</a></td><td>{_verdict(e)}</td>'
                    f'<td>{e.get("seconds", 0):.1f}</td></tr>')
    rows.append("</table>")
    return "\n".join(rows)


def _section(e: dict, out_dir: str) -> str:
    parts = [f'<section id="{escape(e["id"])}">',
             f'<h2>{e["number"]}. {escape(e["claim"])}</h2>',
             f'<p>Verdict: {_verdict(e)} &middot; <code>{escape(e["id"])}</code></p>']
    if e.get("formula"):
        parts.append(f'<pre class="formula">{escape(e["formula"])}</pre>')
    if e.get("summary"):
        parts.append(f"<p>{escape(e['summary'])}</p>")
    if e.get("measured"):
        parts.append(_measured_table(e["measured"]))
    if e.get("notes"):
        parts.append("<ul class=\"notes\">" + "".join(f"<li>{escape(n)}</li>" for n in e["notes"])
                     + "</ul>")
    if e.get("error"):
        parts.append(f'<pre class="error">{escape(e["error"])}</pre>')
    if e.get("figure"):
        parts.append(_figure(e, out_dir))
    parts.append("</section>")
    return "\n".join(parts)


def _measured_table(measured: dict) -> str:
    rows = ["<table><tr><th>measured</th><th>value</th></tr>"]
    for key, value in measured.items():
        rows.append(f"<tr><td>{escape(str(key))}</td>"
                    f'<td class="value">{escape(_short(value))}</td></tr>')
    rows.append("</table>")
    return "\n".join(rows)


def _short(value) -> str:
    """A compact rendering: floats to 6 significant digits, long lists cut with a count."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        items = [_short(v) for v in value[:_MAX_ITEMS]]
        more = f", ... ({len(value)} values)" if len(value) > _MAX_ITEMS else ""
        return "[" + ", ".join(items) + more + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _figure(e: dict, out_dir: str) -> str:
    path = os.path.join(out_dir, e["figure"])
    try:
        with open(path, "rb") as f:
            data = base64.b64encode(f.read()).decode("ascii")
    except OSError as exc:
        return f'<p class="fails">figure {escape(e["figure"])} unreadable: {escape(str(exc))}</p>'
    return (f'<figure><img alt="{escape(e["claim"])}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(e['figure'])}</figcaption></figure>")
