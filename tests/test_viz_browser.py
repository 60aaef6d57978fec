"""The stepper page in a real browser (Debian's Chromium, headless, driven over the DevTools
pipe): it loads offline with no console error, its buttons and keys visit the nodes in the order
the engine recorded (observed here, independently, on a real backward), it draws, and it reads
at a phone's width. Missing Chromium fails these tests (CI installs it); it never skips them."""

import io

import numpy as np
import pytest
from PIL import Image

import retrograd as rg
import retrograd.nn.functional as F
from retrograd import engine, viz
from retrograd.viz.browser import Chromium

STATE = ("(() => { const r = document.querySelector('.rg-stepper'); "
         "return [r.dataset.current, r.dataset.phase]; })()")


@pytest.fixture(scope="module")
def browser():
    with Chromium() as b:
        yield b


@pytest.fixture(scope="module")
def stepper(tmp_path_factory):
    """An MLP's stepper page and the order a real backward visits its nodes, observed apart."""
    rg.manual_seed(3)
    model = rg.nn.Sequential(rg.nn.Linear(3, 5), rg.nn.Tanh(), rg.nn.Linear(5, 4), rg.nn.ReLU(),
                             rg.nn.Linear(4, 2))
    x = rg.tensor(np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32))
    loss = F.cross_entropy(model(x), rg.tensor([1, 0]))
    g = viz.graph(loss, params=model)
    path = tmp_path_factory.mktemp("stepper") / "graph.html"
    g.save(str(path))
    seen = []
    with engine.observing(lambda node, grad: seen.append(node.seq)):
        loss.backward()
    ids = {v.seq: v.id for v in g.operations}
    forward = [ids[s] for s in sorted(ids)]
    backward = [ids[s] for s in seen]
    return path, forward, backward


def png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def test_stepping_visits_the_engines_recorded_order(browser, stepper):
    path, forward, backward = stepper
    page = browser.open(str(path))
    expected = [[n, "forward"] for n in forward] + [[n, "backward"] for n in backward]
    assert len(forward) == 5 and backward[0] == forward[-1]  # newest node first
    visited = [page.evaluate(STATE)]
    for _ in range(len(expected) - 1):
        page.evaluate("document.querySelector('[data-go=next]').click()")
        visited.append(page.evaluate(STATE))
    assert visited == expected
    assert page.evaluate("document.querySelector('[data-go=next]').disabled") is True
    back = []
    for _ in range(len(expected) - 1):  # and back again, one step at a time
        page.evaluate("document.querySelector('[data-go=prev]').click()")
        back.append(page.evaluate(STATE))
    assert back == expected[-2::-1]
    # the keyboard moves the same way, and a chip jumps straight to its step
    page.evaluate("document.querySelector('.rg-stepper').dispatchEvent(new KeyboardEvent("
                  "'keydown', {key: 'ArrowRight', bubbles: true}))")
    assert page.evaluate(STATE) == expected[1]
    page.evaluate(f"document.querySelectorAll('.rg-chips button')[{len(forward)}].click()")
    assert page.evaluate(STATE) == expected[len(forward)]
    # exactly one step shows, and it is the one for the highlighted node
    shown = page.evaluate("Array.from(document.querySelectorAll('.rg-step')).filter("
                          "s => getComputedStyle(s).display !== 'none').map(s => s.dataset.node)")
    current = page.evaluate("Array.from(document.querySelectorAll('.rg-v.current'))"
                            ".map(v => v.dataset.node)")
    assert shown == current == [expected[len(forward)][0]]
    assert page.problems() == []
    assert all(url.startswith(("file:", "data:")) for url in page.requests), page.requests


def test_the_page_draws_the_graph_and_the_highlight(browser, stepper):
    path, forward, _ = stepper
    page = browser.open(str(path), width=1280, height=900)
    box = page.evaluate("(() => { const r = document.querySelector('.rg-graph')"
                        ".getBoundingClientRect(); return {x: r.x, y: r.y + scrollY, "
                        "width: r.width, height: r.height}; })()")
    assert box["width"] > 300 and box["height"] > 200
    image = png(page.screenshot(clip=box))
    # the operations' fill (#dbe9f6) and the current node's outline (#d9480f) are drawn
    for colour in ((0xdb, 0xe9, 0xf6), (0xd9, 0x48, 0x0f)):
        near = np.abs(image - np.array(colour)).sum(axis=2) < 30
        assert near.sum() > 200, colour
    # MathML is laid out as math: a fraction's numerator sits above its denominator
    above = page.evaluate("(() => { const f = document.querySelector('.rg-head mfrac'); "
                          "return f.children[0].getBoundingClientRect().bottom <= "
                          "f.children[1].getBoundingClientRect().top + 1; })()")
    assert above is True
    assert page.problems() == []


@pytest.mark.parametrize("width", [1280, 390])
def test_the_page_reads_at_desktop_and_phone_widths(browser, stepper, width):
    path, _, _ = stepper
    page = browser.open(str(path), width=width, height=800)
    overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
    assert overflow <= 0  # nothing sticks out of the page sideways
    sizes = page.evaluate("Array.from(document.querySelectorAll('.rg-step.active li, "
                          ".rg-step.active h4, .rg-controls button')).map(e => "
                          "parseFloat(getComputedStyle(e).fontSize))")
    assert sizes and min(sizes) >= 12
    # the graph's node labels stay at least 6 px tall on screen (scrolling sideways on a phone)
    label = page.evaluate("document.querySelector('.rg-v text').getBoundingClientRect().height")
    assert label >= 6
    buttons = page.evaluate("Array.from(document.querySelectorAll('.rg-controls button'))"
                            ".map(b => b.getBoundingClientRect().right)")
    assert max(buttons) <= width


def test_without_script_every_step_reads_in_order(browser, stepper):
    path, forward, backward = stepper
    page = browser.open("about:blank")
    page.send("Emulation.setScriptExecutionDisabled", {"value": True})
    page.send("Page.navigate", {"url": path.resolve().as_uri()})
    browser.wait_for("Page.loadEventFired", page.session)
    steps = page.evaluate  # evaluation works with page scripts disabled
    shown = steps("Array.from(document.querySelectorAll('.rg-step')).filter(s => "
                  "getComputedStyle(s).display !== 'none').map(s => s.dataset.node)")
    assert shown == forward + backward
