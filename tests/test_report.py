"""The course report's text: measured tables with readable labels (never raw keys or dict dumps),
formulas that parse as MathML, verdict lines that carry their condition with numbers recounted
from the measurements, labels that match their data, and the number formats."""

import json
import pathlib
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from retrograd.course import e16_optimizers
from retrograd.course.report import render_report
from retrograd.course.runner import discover
from retrograd.course.tables import arrow, listing, num, pct, sci
from retrograd.viz.mathml import inline_math, mathml

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "course"


@pytest.fixture(scope="module")
def committed():
    """The full run's entries and page, as committed in docs/course."""
    entries = json.loads((DOCS / "claims.json").read_text(encoding="utf-8"))
    return {e["number"]: e for e in entries}, (DOCS / "report.html").read_text(encoding="utf-8")


class _Verdicts(HTMLParser):
    """The text of each section's verdict paragraph, by section id."""

    def __init__(self):
        super().__init__()
        self.section, self.inside, self.text = None, False, {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.section = attrs.get("id")
        elif tag == "p" and attrs.get("class") == "verdict":
            self.inside = True
            self.text[self.section] = ""

    def handle_endtag(self, tag):
        if tag == "p":
            self.inside = False

    def handle_data(self, data):
        if self.inside:
            self.text[self.section] += data


def verdicts(html: str) -> dict:
    parser = _Verdicts()
    parser.feed(html)
    return parser.text


def test_every_claim_has_a_readable_table_and_parsing_math(committed):
    entries, html = committed
    # the committed full report holds every claim of the course as it stands
    assert sorted(entries) == [e.number for e in discover()]
    for number, e in entries.items():
        assert e["holds"], number
        assert len(e["table"]) >= 3, number
        for label, value in e["table"]:
            assert label not in e["measured"], (number, label)  # a label, not a key
            words = " ".join(label.split("$")[::2])  # the text outside inline math
            for name in ("focal_loss", "cross_entropy"):  # the library's functions, by name
                words = words.replace(name, "")
            assert "_" not in words, label
            assert not value.startswith(("{", "[")) or value.startswith("[−"), value
            inline_math(label)
            inline_math(value)
        for line in e["tex"].splitlines():
            mathml(line, display=True)
        for text in [e["claim"], e["summary"], *e["notes"]]:
            inline_math(text)
    n_lines = sum(len(e["tex"].splitlines()) for e in entries.values())
    assert html.count('<div class="formula"><math display="block"') == len(entries)  # one a claim
    assert html.count('<math display="block"') >= n_lines
    visible = re.sub(r'alttext="[^"]*"', "", html)  # the TeX kept for screen readers aside
    assert "δ_{" not in visible and "_{" not in visible  # no raw TeX left in the text


def test_conditions_are_in_the_verdict_line_with_recounted_numbers(committed):
    entries, html = committed
    lines = verdicts(html)
    focal = entries[14]["measured"]
    zero = sum(f == 0 for f in focal["per_seed_f1_ce"])
    line = lines["focal-loss"]
    assert "holds" in line and "average precision does not rise" in line
    assert f"{focal['ce: average_precision']:.3f} → {focal['focal: average_precision']:.3f}" \
        in line
    assert f"F1 = 0 on {zero} of {focal['seeds']} seeds" in line and zero > 0
    imbalance = entries[11]["measured"]
    assert f"{imbalance['plain CE: accuracy']:.2f} (plain CE)" in lines["class-imbalance"]
    ece_plain, ece_smoothed = entries[12]["measured"]["digits: ece plain / smoothed"]
    assert ece_smoothed > ece_plain
    assert f"{ece_plain:.3f}" in lines["label-smoothing"]
    returns = entries[15]["measured"]["per_seed_return_last_50"]
    below = sum(r < 100 for r in returns)
    assert f"{below} of {len(returns)} seeds" in lines["reinforce-is-weighted-cross-entropy"]
    for e in entries.values():  # a claim without a condition says only that it holds
        if not e["condition"]:
            assert lines[e["id"]].split("·")[0].strip() == "Verdict: holds"


def test_e16_says_the_feature_scales_of_its_data():
    x, _ = e16_optimizers.make_problem()
    std = x.std(axis=0)
    # the data: standard deviations from about 0.1 to about 10 (1000 samples per column)
    assert 0.08 < std.min() < 0.12 and 8 < std.max() < 12
    label = f"{np.round(std.min(), 1):g} .. {np.round(std.max(), 0):g}"
    entries = json.loads((DOCS / "claims.json").read_text(encoding="utf-8"))
    assert entries[15]["measured"]["feature_scales"].startswith(label)


def test_render_report_prints_the_condition_and_falls_back_to_plain_text(tmp_path):
    entry = {"id": "x", "number": 1, "claim": "c with $p_i$", "formula": "a < b", "tex": "",
             "measured": {"some_key": 1.5}, "holds": True, "summary": "s", "figure": None,
             "notes": [], "table": [], "condition": "only when $x > 0$ (3 of 5 seeds)",
             "stepper": None, "seconds": 0.0, "error": None}
    html = render_report([entry], str(tmp_path))
    line = verdicts(html)["x"]
    assert line.startswith("Verdict: holds, only when") and "(3 of 5 seeds)" in line
    assert '<pre class="formula">a &lt; b</pre>' in html  # no TeX: the plain formula
    assert "some key" in html and "some_key" not in html  # the fallback table's label
    assert "(with a condition)" in html


def test_number_formats():
    assert sci(2.5234e-7) == "2.5 × 10⁻⁷" and sci(-3.8e-2) == "−3.8 × 10⁻²"
    assert num(0.1234567) == "0.1235" and num(-0.5) == "−0.5" and num(1.0e-16) == "1.0 × 10⁻¹⁶"
    assert num(182144) == "182\u2009144" and num(18282.7, 3) == "18\u2009283"
    assert num(True) == "yes"
    assert num("inf") == "∞" and num(float("nan")) == "nan"
    assert pct(0.952) == "95.2 %" and arrow(1, 2) == "1 → 2"
    assert listing(range(20), limit=3) == "0, 1, 2, … (20 values)"
