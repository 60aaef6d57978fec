"""The stepper: a Graph as HTML that walks the forward pass (creation order), then the backward
pass in the order the engine ran it, one node per step.

`fragment(graph)` is one stepper (a <div>), to embed in a page that includes STEPPER_CSS and
STEPPER_JS once (the course report embeds two); `page(graph)` is a whole offline page. Without
script every step is shown, one after the other, so the page still reads as a document.
"""

from __future__ import annotations

import hashlib
from html import escape

from .dot import shape_text
from .formulas import NOTATION, formula_for
from .layout import BOX_H, BOX_W, layout
from .mathml import mathml

# TeX with backslashes stays outside f-string expressions (Python 3.11)
_C_HAT, _NLL = r"\hat c", r"-\log p_{\hat c}"
_GRAD_P, _UPSTREAM = r"(p - \operatorname{onehot})/N", r"g = \partial L / \partial y"

STEPPER_CSS = """
.rg-stepper { border: 1px solid #c9d3de; border-radius: 8px; padding: 0.75rem; margin: 1rem 0;
  background: #fff; color: #1d2430; font-family: system-ui, sans-serif; line-height: 1.45; }
.rg-stepper:focus { outline: 2px solid #8fb3d9; }
.rg-head p { margin: 0.2rem 0; }
.rg-body { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1rem;
  align-items: start; }
.rg-graphbox { overflow-x: auto; }
.rg-graph { width: 100%; height: auto; max-height: 75vh; display: block; }
@media (max-width: 760px) {
  .rg-body { grid-template-columns: minmax(0, 1fr); }
  /* a phone keeps the labels legible: the drawing scrolls sideways rather than shrinking */
  .rg-graph { width: max(100%, calc(var(--rg-width) * 0.72)); max-height: none; }
}
.rg-v rect { fill: #dbe9f6; stroke: #2b5d8a; stroke-width: 1.2; }
.rg-v.rg-param rect { fill: #e3f1df; stroke: #3d7a35; }
.rg-v.rg-input rect, .rg-v.rg-constant rect { fill: #f1f1f1; stroke: #777; }
.rg-v.rg-root rect { stroke-width: 2.5; }
.rg-v text { font: 12px system-ui, sans-serif; fill: #1d2430; text-anchor: middle; }
.rg-v text.rg-sub { font-size: 10.5px; fill: #4a5563; }
.rg-v.current rect { stroke: #d9480f; stroke-width: 4; }
.rg-e path { fill: none; stroke: #8a94a3; stroke-width: 1.3; }
.rg-e text { font: 10px ui-monospace, monospace; fill: #4a5563; }
.rg-e.flow path { stroke: #d9480f; stroke-width: 2.6; }
.rg-e.back path { stroke: #b02a6b; stroke-width: 2.6; stroke-dasharray: 6 3; }
.rg-controls { display: none; gap: 0.4rem; align-items: center; flex-wrap: wrap;
  margin: 0.5rem 0; }
.rg-js .rg-controls { display: flex; }
.rg-controls button { font: inherit; padding: 0.25rem 0.7rem; border: 1px solid #8fa3b8;
  border-radius: 5px; background: #f4f7fb; cursor: pointer; }
.rg-controls button:disabled { opacity: 0.45; cursor: default; }
.rg-counter { font-variant-numeric: tabular-nums; margin-left: 0.3rem; }
.rg-chips { display: flex; flex-wrap: wrap; gap: 0.25rem; list-style: none; padding: 0;
  margin: 0.3rem 0; }
.rg-chips button { font: 12px system-ui, sans-serif; padding: 0.1rem 0.45rem; border-radius: 4px;
  border: 1px solid #c9d3de; background: #fff; cursor: pointer; }
.rg-chips button.forward { border-color: #2b5d8a; }
.rg-chips button.backward { border-color: #b02a6b; }
.rg-chips button.active { background: #d9480f; border-color: #d9480f; color: #fff; }
.rg-step { border-top: 1px solid #e3e8ee; padding-top: 0.4rem; margin-bottom: 0.6rem; }
.rg-js .rg-step { display: none; border-top: none; }
.rg-js .rg-step.active { display: block; }
.rg-step h3 { font-size: 1.05rem; margin: 0.2rem 0 0.4rem; }
.rg-step h3 .rg-phase { font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.04em;
  padding: 0.05rem 0.4rem; border-radius: 3px; color: #fff; margin-right: 0.4rem; }
.rg-step[data-phase=forward] .rg-phase { background: #2b5d8a; }
.rg-step[data-phase=backward] .rg-phase { background: #b02a6b; }
.rg-step h4 { font-size: 0.9rem; margin: 0.6rem 0 0.2rem; }
.rg-step math[display=block] { margin: 0.3rem 0; font-size: 1.05rem; }
.rg-scroll { overflow-x: auto; max-width: 100%; }
table.rg-values { border-collapse: collapse; font: 0.8rem ui-monospace, monospace; }
table.rg-values td, table.rg-values th { border: 1px solid #d5dbe3; padding: 0.1rem 0.35rem;
  text-align: right; }
table.rg-values th { background: #f3f5f8; font-family: system-ui, sans-serif; }
.rg-meta { color: #4a5563; font-size: 0.85rem; }
.rg-note { background: #fff7e6; border-left: 3px solid #e0a526; padding: 0.3rem 0.6rem;
  font-size: 0.9rem; }
"""

STEPPER_JS = """
(function () {
  document.querySelectorAll('.rg-stepper').forEach(function (root) {
    var steps = Array.prototype.slice.call(root.querySelectorAll('.rg-step'));
    var chips = Array.prototype.slice.call(root.querySelectorAll('.rg-chips button'));
    var counter = root.querySelector('.rg-counter');
    var k = 0;
    root.classList.add('rg-js');
    function show(i) {
      k = Math.max(0, Math.min(steps.length - 1, i));
      var step = steps[k], node = step.dataset.node, phase = step.dataset.phase;
      steps.forEach(function (s, j) { s.classList.toggle('active', j === k); });
      chips.forEach(function (c, j) { c.classList.toggle('active', j === k); });
      root.querySelectorAll('.rg-v').forEach(function (v) {
        v.classList.toggle('current', v.dataset.node === node);
      });
      root.querySelectorAll('.rg-e').forEach(function (e) {
        var into = e.dataset.target === node;
        e.classList.toggle('flow', into && phase === 'forward');
        e.classList.toggle('back', into && phase === 'backward' && e.dataset.grad === '1');
      });
      root.dataset.current = node;
      root.dataset.phase = phase;
      root.dataset.step = String(k);
      counter.textContent = 'step ' + (k + 1) + ' of ' + steps.length;
      root.querySelector('[data-go=prev]').disabled = k === 0;
      root.querySelector('[data-go=next]').disabled = k === steps.length - 1;
    }
    var moves = {first: function () { return 0; }, prev: function () { return k - 1; },
                 next: function () { return k + 1; },
                 last: function () { return steps.length - 1; }};
    root.querySelectorAll('[data-go]').forEach(function (b) {
      b.addEventListener('click', function () { show(moves[b.dataset.go]()); });
    });
    chips.forEach(function (c, j) {
      c.addEventListener('click', function () { show(j); });
    });
    root.addEventListener('keydown', function (ev) {
      if (ev.key === 'ArrowRight') { show(k + 1); ev.preventDefault(); }
      if (ev.key === 'ArrowLeft') { show(k - 1); ev.preventDefault(); }
    });
    if (steps.length) { show(0); }
  });
})();
"""


def _n(x) -> str:
    return f"{x:.4g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def values_html(summary: dict) -> str:
    """An array's values: a number, a row or a matrix when small, else its statistics."""
    head = f'<span class="rg-meta">shape {shape_text(summary["shape"])}, {summary["dtype"]}'
    if "values" not in summary:
        if "mean" not in summary:
            return head + "</span>"
        first = ", ".join(_n(x) for x in summary.get("first", []))
        return (head + f"; min {_n(summary['min'])}, mean {_n(summary['mean'])}, max "
                f"{_n(summary['max'])}; first values {first}, &hellip;</span>")
    values = summary["values"]
    if not isinstance(values, list):
        return head + f"</span> <b>= {_n(values)}</b>"
    rows = values if values and isinstance(values[0], list) else [values]
    cells = "".join("<tr>" + "".join(f"<td>{_n(x)}</td>" for x in row) + "</tr>" for row in rows)
    return head + f'</span><div class="rg-scroll"><table class="rg-values">{cells}</table></div>'


def _svg(graph, uid: str) -> str:
    places, width, height = layout(graph)
    by_id = {v.id: v for v in graph.vertices}
    parts = [f'<svg class="rg-graph" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
             f'style="--rg-width: {width:.0f}px" aria-label="computation graph">',
             f'<defs><marker id="{uid}-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
             f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
             f'<path d="M0,0 L10,5 L0,10 z" fill="#8a94a3"/></marker></defs>']
    for e in graph.edges:
        (x0, y0), (x1, y1) = places[e.source], places[e.target]
        y0, y1 = y0 + BOX_H / 2, y1 - BOX_H / 2
        mid = (y0 + y1) / 2
        parts.append(
            f'<g class="rg-e" data-source="{e.source}" data-target="{e.target}" '
            f'data-grad="{int(by_id[e.source].requires_grad)}">'
            f'<path d="M{x0:.1f},{y0:.1f} C{x0:.1f},{mid:.1f} {x1:.1f},{mid:.1f} {x1:.1f},'
            f'{y1 - 2:.1f}" marker-end="url(#{uid}-arrow)"/>'
            f'<text x="{(x0 + x1) / 2 + 4:.1f}" y="{mid + 3:.1f}">'
            f"{escape(shape_text(e.shape))}</text></g>")
    for v in graph.vertices:
        x, y = places[v.id]
        classes = f"rg-v rg-{v.kind}" + (" rg-root" if v.id == graph.root else "")
        radius = 6 if v.kind == "op" else BOX_H / 2
        sub = shape_text(v.shape) + (" · grad" if v.requires_grad and v.kind != "op" else "")
        parts.append(
            f'<g class="{classes}" data-node="{v.id}"><title>{escape(v.label)}</title>'
            f'<rect x="{x - BOX_W / 2:.1f}" y="{y - BOX_H / 2:.1f}" width="{BOX_W}" '
            f'height="{BOX_H}" rx="{radius:.0f}"/>'
            f'<text x="{x:.1f}" y="{y - 3:.1f}">{escape(_fit(v.label))}</text>'
            f'<text class="rg-sub" x="{x:.1f}" y="{y + 13:.1f}">{escape(sub)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _fit(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _inputs_html(graph, v, by_id, step_of) -> str:
    items = []
    for e in sorted((e for e in graph.edges if e.target == v.id), key=lambda e: e.position):
        src = by_id[e.source]
        if src.kind == "op":
            where = f"the output of {escape(src.label)} (forward step {step_of[src.id]})"
            items.append(f"<li><b>{escape(e.name)}</b>: {where}, shape "
                         f"{escape(shape_text(e.shape))}</li>")
        else:
            what = "parameter" if src.kind == "param" else "input"
            items.append(f"<li><b>{escape(e.name)}</b> = {what} <code>{escape(src.label)}"
                         f"</code>: {values_html(src.summary)}</li>")
    return "<ul>" + "".join(items) + "</ul>" if items else ""


def _loss_forward(loss: dict) -> str:
    rows = []
    for n, (o, p, t, nll) in enumerate(zip(loss["logits"], loss["p"], loss["target"],
                                           loss["nll"], strict=True)):
        rows.append(f"<tr><td>{n}</td><td>{', '.join(_n(x) for x in o)}</td>"
                    f"<td>{', '.join(_n(x) for x in p)}</td><td>{t}</td><td>{_n(nll)}</td></tr>")
    total = sum(loss["nll"]) / (loss["divisor"] if loss["reduced"] else 1)
    how = (f"the sum divided by N = {_n(loss['divisor'])}" if loss["reduced"]
           else "one loss per sample")
    return ('<h4>The formula, with this batch\'s numbers</h4><div class="rg-scroll">'
            '<table class="rg-values"><tr><th>n</th><th>logits o</th><th>p = softmax(o)</th>'
            f"<th>{mathml(_C_HAT)}</th><th>{mathml(_NLL)}</th></tr>"
            f"{''.join(rows)}</table></div><p>L = {how}"
            + (f" = <b>{_n(total)}</b>" if loss["reduced"] else "") + "</p>")


def _loss_backward(loss: dict, passed: str) -> str:
    rows = []
    for n, (p, h, g) in enumerate(zip(loss["p"], loss["one_hot"], loss["grad"], strict=True)):
        rows.append(f"<tr><td>{n}</td><td>{', '.join(_n(x) for x in p)}</td>"
                    f"<td>{', '.join(_n(x) for x in h)}</td>"
                    f"<td>{', '.join(_n(x) for x in g)}</td></tr>")
    return ('<h4>The course\'s gradient, computed from the formula</h4>'
            '<div class="rg-scroll"><table class="rg-values"><tr><th>n</th><th>p</th>'
            f"<th>onehot</th><th>{mathml(_GRAD_P)}</th></tr>"
            f"{''.join(rows)}</table></div>"
            f"<p>{passed}</p>")


def _forward_step(graph, v, k, n_forward, by_id, step_of) -> str:
    form = formula_for(v.prim)
    parts = [f'<section class="rg-step" data-phase="forward" data-node="{v.id}" '
             f'data-prim="{escape(v.prim)}">',
             f'<h3><span class="rg-phase">forward {k}/{n_forward}</span>{escape(v.label)}</h3>']
    if form.fuses:
        parts.append(f'<p class="rg-meta">One node that fuses: {escape(form.fuses)}.</p>')
    if form.forward:
        parts.append(mathml(form.forward, display=True))
    if v.detail:
        parts.append(f'<p class="rg-meta">parameters: {escape(v.detail)}</p>')
    parts.append("<h4>Inputs</h4>" + _inputs_html(graph, v, by_id, step_of))
    parts.append("<h4>Output</h4>" + values_html(v.summary))
    if v.loss is not None:
        parts.append(_loss_forward(v.loss))
    if v.id == graph.root:
        parts.append('<p class="rg-note">This is the output the backward pass starts from.</p>')
    parts.append("</section>")
    return "".join(parts)


def _backward_step(graph, step, j, by_id, back_step_of) -> str:
    v = by_id[step.node]
    form = formula_for(v.prim)
    parts = [f'<section class="rg-step" data-phase="backward" data-node="{v.id}" '
             f'data-prim="{escape(v.prim)}">',
             f'<h3><span class="rg-phase">backward {j}/{len(graph.backward)}</span>'
             f"{escape(v.label)}</h3>",
             f"<h4>Upstream gradient {mathml(_UPSTREAM)}, "
             f"as the engine handed it to this node</h4>" + values_html(step.grad)]
    if form.backward:
        parts.append("<h4>What the node's VJP makes of it</h4>"
                     + mathml(form.backward, display=True))
    items = []
    for e in sorted((e for e in graph.edges if e.target == v.id), key=lambda e: e.position):
        src = by_id[e.source]
        if src.kind == "op":
            items.append(f"<li><b>{escape(e.name)}</b>: passed down to {escape(src.label)} "
                         f"(backward step {back_step_of.get(src.id, '?')})</li>")
        elif src.grad is not None:
            uses = sum(1 for x in graph.edges if x.source == src.id)
            total = f" (total over its {uses} uses)" if uses > 1 else ""
            items.append(f"<li><b>{escape(e.name)}</b>: <code>{escape(src.label)}</code>'s "
                         f"gradient{total}: {values_html(src.grad)}</li>")
    if items:
        parts.append("<h4>Gradients it produces</h4><ul>" + "".join(items) + "</ul>")
    if v.loss is not None:
        logits = next((e for e in graph.edges if e.target == v.id and e.position == 0), None)
        passed = ""
        if logits is not None and by_id[logits.source].kind == "op":
            passed = (f"The engine hands this to {escape(by_id[logits.source].label)} as its "
                      f"upstream gradient (backward step {back_step_of.get(logits.source, '?')})")
            gap = v.loss.get("engine_max_abs_diff")
            passed += ("." if gap is None else
                       f": the recorded gradient and g times this table differ by at most "
                       f"{gap:.1e} ({by_id[logits.source].dtype} rounding).")
        parts.append(_loss_backward(v.loss, passed))
    parts.append("</section>")
    return "".join(parts)


def fragment(graph, title: str = "") -> str:
    """One stepper: the graph's drawing, the controls and one section per step."""
    # ids unique within a page (two steppers in one report), the same for the same graph
    uid = "rg" + hashlib.sha1((graph.dot() + title).encode()).hexdigest()[:10]
    by_id = {v.id: v for v in graph.vertices}
    forward = graph.operations
    step_of = {v.id: k for k, v in enumerate(forward, 1)}
    back_step_of = {}
    for j, s in enumerate(graph.backward, 1):
        back_step_of.setdefault(s.node, j)
    steps = [_forward_step(graph, v, k, len(forward), by_id, step_of)
             for k, v in enumerate(forward, 1)]
    steps += [_backward_step(graph, s, j, by_id, back_step_of)
              for j, s in enumerate(graph.backward, 1)]
    chips = [f'<li><button type="button" class="forward">F{k} {escape(_fit(v.label, 14))}'
             f"</button></li>" for k, v in enumerate(forward, 1)]
    chips += [f'<li><button type="button" class="backward">B{j} '
              f"{escape(_fit(by_id[s.node].label, 14))}</button></li>"
              for j, s in enumerate(graph.backward, 1)]
    head = (f"<p><b>{escape(title)}</b></p>" if title else "") + (
        f'<p class="rg-meta">{len(forward)} operations recorded; forward in the order they ran,'
        f" then backward in the order the engine ran them ({escape(graph.seed)}). Notation: "
        f"{mathml(NOTATION)}. Keys: &larr; &rarr;.</p>")
    controls = ('<div class="rg-controls"><button type="button" data-go="first">&laquo; first'
                '</button><button type="button" data-go="prev">&#x25C0; back</button>'
                '<button type="button" data-go="next">next &#x25B6;</button>'
                '<button type="button" data-go="last">last &raquo;</button>'
                '<span class="rg-counter"></span></div>')
    return (f'<div class="rg-stepper" id="{uid}" tabindex="0"><div class="rg-head">{head}</div>'
            f"{controls}<ol class=\"rg-chips\">{''.join(chips)}</ol>"
            f'<div class="rg-body"><div class="rg-graphbox">{_svg(graph, uid)}</div>'
            f'<div class="rg-steps">{"".join(steps)}</div></div></div>')


def page(graph, title: str) -> str:
    """A whole offline page holding one stepper."""
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>"
            "body { margin: 1rem auto; max-width: 80rem; padding: 0 0.8rem; "
            "font-family: system-ui, sans-serif; }"
            f"{STEPPER_CSS}</style></head><body><h1 style=\"font-size:1.4rem\">"
            f"{escape(title)}</h1>{fragment(graph)}<script>{STEPPER_JS}</script></body></html>\n")
