"""report.html: one self-contained page (inline CSS, figures as base64 PNG data URIs, formulas as
MathML, no network) with a summary table and, per claim, its verdict (and the condition it holds
under), formula, measured numbers, notes and figure. Claims that record a graph embed a stepper
of its backward pass, the page's only script (inline, a few lines); without it the steps read
one after the other."""

from __future__ import annotations

import base64
import json
import os
import platform
import re
from html import escape

from ..viz.mathml import inline_math, mathml
from ..viz.page import STEPPER_CSS, STEPPER_JS, fragment

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; overflow-wrap: break-word; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 0.8rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.holds { color: #0a6b2d; font-weight: bold; } .fails { color: #b00020; font-weight: bold; }
section { border-top: 2px solid #ddd; margin-top: 2rem; padding-top: 0.5rem; }
pre { background: #f7f7f7; padding: 0.5rem 0.8rem; overflow-x: auto; white-space: pre-wrap; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
td.value { font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; max-width: 100%; }
.formula { overflow-x: auto; max-width: 100%; padding: 0.2rem 0; }
.formula math { font-size: 1.1rem; margin: 0.35rem 0; }
.verdict .condition { color: #7a4b00; }
.condition-mark { color: #7a4b00; font-size: 0.85rem; }
figure { margin: 1rem 0; }
@media (max-width: 600px) {
  body { margin: 1rem auto; padding: 0 0.6rem; }
  h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; }
  /* a phone scrolls a figure sideways instead of shrinking its labels past reading */
  figure img { max-width: none; width: 640px; }
  th, td { padding: 0.2rem 0.3rem; }
  .formula math { font-size: 1rem; }
}
"""

_MAX_ITEMS = 12  # longer lists (curves) are shortened on the page; claims.json keeps them whole


def render_report(entries: list[dict], out_dir: str, meta: dict | None = None) -> str:
    """The HTML page for the claims.json entries; figures are read from out_dir."""
    meta = meta or {}
    n_hold = sum(1 for e in entries if e["holds"])
    mode = "quick" if meta.get("quick") else "full"
    steppers = [_stepper(e, out_dir) for e in entries]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>retrograd: the course, executable</title>",
             f"<style>{_CSS}{STEPPER_CSS if any(steppers) else ''}</style></head><body>",
             "<h1>The course, executable</h1>",
             f'<p class="meta">{len(entries)} claims, {n_hold} holding, '
             f"{len(entries) - n_hold} not holding &middot; {mode} run"
             + (f" started {escape(str(meta['started']))}" if "started" in meta else "")
             + (f", {meta['seconds']:.1f} s" if "seconds" in meta else "")
             + (f" &middot; <b>{escape(meta['interrupted'])}</b>" if "interrupted" in meta else "")
             + f" &middot; {escape(_versions())}</p>",
             _summary_table(entries)]
    parts += [_section(e, out_dir, stepper) for e, stepper in zip(entries, steppers, strict=True)]
    if any(steppers):
        parts.append(f"<script>{STEPPER_JS}</script>")
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


def _text(text: str) -> str:
    """Escaped text whose $...$ spans are MathML; plain escaped text if the math is broken."""
    try:
        return inline_math(text)
    except ValueError:
        return escape(text)


def _plain(text: str) -> str:
    """Text for an attribute (an image's alt): the math's TeX marks dropped, θ_{ij} -> θ_ij."""
    text = re.sub(r"\\(?:operatorname|text|mathrm|mathbf)\{([^}]*)\}", r"\1", text)
    text = re.sub(r"\\[,;:!]", " ", text)
    return re.sub(r"[${}]", "", text)


def _summary_table(entries: list[dict]) -> str:
    rows = ['<div class="scroll"><table><tr><th>#</th><th>claim</th><th>verdict</th>'
            "<th>seconds</th></tr>"]
    for e in entries:
        mark = (' <span class="condition-mark">(with a condition)</span>'
                if e["holds"] and e.get("condition") else "")
        rows.append(f'<tr><td>{e["number"]}</td><td><a href="#{escape(e["id"])}">'
                    f'{_text(e["claim"])}</a></td><td>{_verdict(e)}{mark}</td>'
                    f'<td>{e.get("seconds", 0):.1f}</td></tr>')
    rows.append("</table></div>")
    return "\n".join(rows)


def _section(e: dict, out_dir: str, stepper: str = "") -> str:
    condition = (f', <span class="condition">{_text(e["condition"])}</span>'
                 if e.get("condition") else "")
    parts = [f'<section id="{escape(e["id"])}">',
             f'<h2>{e["number"]}. {_text(e["claim"])}</h2>',
             f'<p class="verdict">Verdict: {_verdict(e)}{condition} &middot; '
             f'<code>{escape(e["id"])}</code></p>']
    parts.append(_formula(e))
    if e.get("summary"):
        parts.append(f"<p>{_text(e['summary'])}</p>")
    if e.get("table"):
        parts.append(_rows_table(e["table"]))
    elif e.get("measured"):
        parts.append(_measured_table(e["measured"]))
    if e.get("notes"):
        parts.append("<ul class=\"notes\">" + "".join(f"<li>{_text(n)}</li>" for n in e["notes"])
                     + "</ul>")
    if e.get("error"):
        parts.append(f'<pre class="error">{escape(e["error"])}</pre>')
    if stepper:
        parts.append(stepper)
    if e.get("figure"):
        parts.append(_figure(e, out_dir))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _formula(e: dict) -> str:
    """The claim's formula as display MathML, one block per line of its TeX; the plain text
    when it has no TeX (or the TeX does not parse)."""
    if e.get("tex"):
        try:
            return ('<div class="formula">'
                    + "".join(mathml(line, display=True) for line in e["tex"].splitlines()
                              if line.strip()) + "</div>")
        except ValueError:
            pass
    return f'<pre class="formula">{escape(e["formula"])}</pre>' if e.get("formula") else ""


def _rows_table(rows: list) -> str:
    body = "".join(f"<tr><td>{_text(label)}</td><td class=\"value\">{_text(value)}</td></tr>"
                   for label, value in rows)
    return (f'<div class="scroll"><table class="measured"><tr><th>measured</th><th>value</th>'
            f"</tr>{body}</table></div>")


def _measured_table(measured: dict) -> str:
    rows = ['<div class="scroll"><table class="measured"><tr><th>measured</th><th>value</th>'
            "</tr>"]
    for key, value in measured.items():
        rows.append(f"<tr><td>{escape(str(key).replace('_', ' '))}</td>"
                    f'<td class="value">{escape(_short(value))}</td></tr>')
    rows.append("</table></div>")
    return "\n".join(rows)


def _stepper(e: dict, out_dir: str) -> str:
    """The embedded stepper of the claim's recorded graph ('' if it has none)."""
    if not e.get("stepper"):
        return ""
    from ..viz import Graph

    path = os.path.join(out_dir, e["stepper"])
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return fragment(Graph.from_dict(data["graph"]), data.get("title", ""))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return (f'<p class="fails">stepper {escape(e["stepper"])} unreadable: '
                f"{escape(str(exc))}</p>")


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
    return (f'<figure class="scroll"><img alt="{escape(_plain(e["claim"]))}" '
            f'src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(e['figure'])}</figcaption></figure>")
