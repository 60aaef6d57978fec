"""The course runner, report and command: discovery, --only, claims.json, report.html (every claim
and every figure embedded, nothing fetched), crashes recorded as not holding, exit statuses."""

import base64
import json
import os
from html.parser import HTMLParser

import numpy as np
import pytest

from retrograd.cli import main
from retrograd.course import Experiment, Result, run_course, runner
from retrograd.course.experiment import pyplot, save_figure
from retrograd.course.report import render_report

KEYS = {"id", "number", "claim", "formula", "tex", "measured", "holds", "summary", "figure",
        "notes", "table", "condition", "stepper", "seconds", "error"}


class _Page(HTMLParser):
    """The page's images, section ids, links and scripts."""

    def __init__(self):
        super().__init__()
        self.images, self.sections, self.links, self.scripts = [], [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "section":
            self.sections.append(attrs["id"])
        elif tag == "script":
            self.scripts += 1
        for key in ("href", "src"):
            if key in attrs and tag != "img":
                self.links.append(attrs[key])


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _drawing(name, value):
    """An experiment's run: a small figure and a verdict computed from `value`."""
    def run(quick, out_dir):
        plt = pyplot()
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, value])
        return Result({"value": value, "quick": quick}, value > 0, f"value {value}",
                      save_figure(fig, out_dir, f"{name}.png"), ["a <note> & more"])
    return run


def _crash(quick, out_dir):
    raise ArithmeticError("deliberate failure")


FAKES = [Experiment(1, "positive", "A claim with <b>markup</b> & an ampersand.", "x > 0",
                    _drawing("positive", 2.0)),
         Experiment(2, "negative", "A claim that does not hold.", "x > 0",
                    _drawing("negative", -1.0)),
         Experiment(3, "crashes", "A claim whose experiment raises.", "", _crash),
         Experiment(4, "not-a-bool", "holds must be a bool", "",
                    lambda q, o: Result({}, "yes", "string verdict"))]


@pytest.fixture
def fakes(monkeypatch):
    monkeypatch.setattr(runner, "discover", lambda: list(FAKES))


def test_discover_orders_the_experiments_and_ids_are_unique():
    experiments = runner.discover()
    numbers = [e.number for e in experiments]
    assert numbers == sorted(numbers)
    assert {1, 2, 3, 4, 5, 6, 7, 8} <= set(numbers)
    assert len({e.id for e in experiments}) == len(experiments)
    for e in experiments:
        assert e.claim and e.formula and callable(e.run), e.id


def test_a_module_that_fails_to_import_becomes_a_crashed_claim(tmp_path, monkeypatch):
    import pkgutil

    real = pkgutil.iter_modules
    ghost = pkgutil.ModuleInfo(None, "e99_does_not_exist", False)
    monkeypatch.setattr(pkgutil, "iter_modules", lambda path: [*real(path), ghost])
    experiments = runner.discover()
    assert experiments[-1].number == 99 and experiments[-1].id == "e99_does_not_exist"
    [entry] = run_course(str(tmp_path), only=["99"], log=None)
    assert not entry["holds"] and "could not be loaded" in entry["error"]


def test_select_by_id_or_number_in_course_order():
    chosen = runner.select(FAKES, ["negative", "1", " 03 "])
    assert [e.id for e in chosen] == ["positive", "negative", "crashes"]
    assert runner.select(FAKES, None) == FAKES


@pytest.mark.parametrize("only", [["nope"], ["1", "99"], [""]])
def test_select_rejects_unknown_claims_listing_the_valid_ones(only):
    with pytest.raises(ValueError, match="--only") as info:
        runner.select(FAKES, only)
    if only != [""]:
        assert repr(only[-1]) in str(info.value)
        assert all(e.id in str(info.value) for e in FAKES)


def test_run_course_records_verdicts_crashes_and_contract_violations(tmp_path, fakes):
    lines = []
    entries = run_course(str(tmp_path), quick=True, log=lines.append)
    on_disk = json.loads((tmp_path / "claims.json").read_text())
    assert on_disk == entries
    assert [e["id"] for e in entries] == ["positive", "negative", "crashes", "not-a-bool"]
    for e in entries:
        assert set(e) == KEYS
        assert isinstance(e["holds"], bool) and isinstance(e["seconds"], float)
    positive, negative, crashed, string = entries
    assert positive["holds"] and positive["measured"] == {"value": 2.0, "quick": True}
    assert not negative["holds"] and negative["error"] is None
    assert not crashed["holds"] and "deliberate failure" in crashed["error"]
    assert crashed["figure"] is None and crashed["summary"].startswith("crashed")
    assert not string["holds"] and "must be a bool" in string["error"]
    assert any("CRASHED" in line for line in lines)
    for e in entries:
        if e["figure"]:
            assert (tmp_path / e["figure"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_embeds_every_figure_and_names_every_claim(tmp_path, fakes):
    entries = run_course(str(tmp_path), quick=True, log=None)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    page = parse(html)
    assert page.sections == [e["id"] for e in entries]
    figures = [e["figure"] for e in entries if e["figure"]]
    assert len(page.images) == len(figures) == 2
    for src, name in zip(page.images, figures, strict=True):
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix):]) == (tmp_path / name).read_bytes()
    # Self-contained: no scripts, and every link stays inside the page.
    assert page.scripts == 0 and all(link.startswith("#") for link in page.links)
    assert "http://" not in html and "https://" not in html
    # Text is escaped, never interpreted.
    assert "A claim with &lt;b&gt;markup&lt;/b&gt; &amp; an ampersand." in html
    assert "<b>markup</b>" not in html and "a &lt;note&gt; &amp; more" in html
    assert "4 claims, 1 holding, 3 not holding" in html
    assert "deliberate failure" in html


def test_an_interrupted_run_still_writes_what_it_measured(tmp_path, monkeypatch):
    def interrupt(quick, out_dir):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "discover", lambda: [FAKES[0], Experiment(
        2, "interrupted", "claim", "f", interrupt), FAKES[1]])
    with pytest.raises(KeyboardInterrupt):
        run_course(str(tmp_path), log=None)
    assert [e["id"] for e in json.loads((tmp_path / "claims.json").read_text())] == ["positive"]
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "interrupted after 1 of 3 claims" in html and parse(html).sections == ["positive"]


def test_to_json_keeps_non_finite_measurements_as_strings():
    value = {"a": np.float32(1.5), "b": [np.inf, -np.inf, np.nan], "c": np.arange(3),
             "d": np.bool_(True), 4: (np.int64(2),)}
    out = runner.to_json(value)
    assert out == {"a": 1.5, "b": ["inf", "-inf", "nan"], "c": [0, 1, 2], "d": True, "4": [2]}
    json.dumps(out, allow_nan=False)


def test_real_experiments_end_to_end(tmp_path):
    entries = run_course(str(tmp_path), quick=True, only=["1", "softmax-sums-to-one"], log=None)
    assert [e["number"] for e in entries] == [1, 2]
    assert all(e["holds"] for e in entries)
    page = parse((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert len(page.images) == 2 and page.sections == [e["id"] for e in entries]


def test_command_exit_statuses(tmp_path, fakes, capsys):
    out = tmp_path / "all"
    assert main(["course", "--quick", "--no-progress", "--out", str(out)]) == 1
    stdout = capsys.readouterr().out
    assert "1/4 claims hold" in stdout and "claim 3 (crashes) does not hold" in stdout
    assert main(["course", "--only", "positive", "--out", str(tmp_path / "one")]) == 0
    captured = capsys.readouterr()
    assert "1/1 claims hold" in captured.out and "[1/1]" in captured.err


def test_unknown_claim_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["course", "--quick", "--only", "1,no-such-claim", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'no-such-claim'" in err and "loss-is-scalar" in err
    assert not out.exists()


def test_unwritable_out_fails_before_running_anything(tmp_path, monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(runner, "discover", lambda: [Experiment(
        1, "spy", "claim", "f", lambda q, o: ran.append(1) or Result({}, True, ""))])
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["course", "--out", str(blocker)]) == 2
    assert "not a folder" in capsys.readouterr().err and ran == []


def test_report_renders_without_figures_or_measurements(tmp_path):
    entry = {"id": "x", "number": 1, "claim": "c", "formula": "", "measured": {}, "holds": True,
             "summary": "", "figure": None, "notes": [], "seconds": 0.0, "error": None}
    page = parse(render_report([entry], str(tmp_path)))
    assert page.sections == ["x"] and page.images == []
    assert os.listdir(tmp_path) == []
