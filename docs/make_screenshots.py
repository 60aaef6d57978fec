"""The README's pictures of retrograd.viz, made by headless Chromium (apt-get install chromium):

    .venv/bin/python docs/make_screenshots.py

docs/viz_stepper.html  the stepper page of a small MLP (made here with retrograd.viz)
docs/viz_stepper.png   that page, stepped to the backward pass through the last Linear layer
docs/course_report.png claim 8 of docs/course/report.html: MathML formula, measured table and
                       its embedded stepper at the softmax-cross-entropy node's backward step
"""

from __future__ import annotations

import pathlib

import numpy as np

import retrograd as rg
import retrograd.nn.functional as F
from retrograd import viz
from retrograd.viz.browser import Chromium

DOCS = pathlib.Path(__file__).resolve().parent


def stepper_page() -> pathlib.Path:
    """The course's perceptron on two samples: Linear+ReLU (fused), Linear, softmax-CE."""
    rg.manual_seed(0)
    model = rg.nn.Sequential(rg.nn.Linear(3, 4), rg.nn.ReLU(), rg.nn.Linear(4, 2))
    x = rg.tensor(np.array([[0.5, -1.0, 2.0], [1.5, 0.2, -0.3]], dtype=np.float32))
    loss = F.cross_entropy(model(x), rg.tensor([1, 0]))
    path = DOCS / "viz_stepper.html"
    with open(path, "w", encoding="utf-8") as f:
        f.write(viz.graph(loss, params=model).html("retrograd.viz: a small MLP, forward then "
                                                   "backward"))
    return path


def shoot(page, selector: str, out: pathlib.Path, height: int | None = None) -> None:
    rect = page.evaluate(f"(() => {{ const r = document.querySelector('{selector}')"
                         ".getBoundingClientRect(); return {x: r.x + scrollX, y: r.y + scrollY,"
                         " width: r.width, height: r.height}; })()")
    if height is not None:
        rect["height"] = min(rect["height"], height)
    out.write_bytes(page.screenshot(clip=rect))
    problems = page.problems()
    if problems:
        raise RuntimeError(f"{out.name}: the page logged errors: {problems}")
    print(f"wrote {out.relative_to(DOCS.parent)} ({rect['width']:.0f} x {rect['height']:.0f})")


def main() -> None:
    with Chromium() as browser:
        page = browser.open(str(stepper_page()), width=1200, height=800)
        # forward steps 1-3, backward step 1 (the loss), step 2: the last Linear layer
        page.evaluate("document.querySelectorAll('.rg-chips button')[4].click()")
        shoot(page, ".rg-stepper", DOCS / "viz_stepper.png")
        page = browser.open(str(DOCS / "course" / "report.html"), width=1100, height=900)
        page.evaluate("document.querySelector('#softmax-ce-gradient .rg-chips li:nth-child(3) "
                      "button').click()")
        shoot(page, "#softmax-ce-gradient", DOCS / "course_report.png", height=1700)


if __name__ == "__main__":
    main()
