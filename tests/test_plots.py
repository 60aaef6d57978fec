"""The run's figures, read back from the matplotlib figures themselves: every class labelled,
the reliability diagram's points at each bin's mean confidence with its count, loss axes with
readable tick labels, titles that name the settings."""

import numpy as np
import pytest

from retrograd.train import metrics, plots
from retrograd.train.config import TrainConfig
from retrograd.train.fit import History
from retrograd.train.results import describe


@pytest.fixture
def captured(monkeypatch):
    figures = []

    def keep(fig, path):
        fig.canvas.draw()  # tick labels are formatted at draw time
        figures.append(fig)

    monkeypatch.setattr(plots, "save_figure", keep)
    return figures


def test_the_confusion_matrix_labels_every_class_with_its_name(captured):
    names = [f"class-{c}" for c in range(12)]
    cm = np.arange(144).reshape(12, 12)
    plots.confusion_matrix(cm, "unused.png", class_names=names)
    ax = captured[0].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    counts = [t.get_text() for t in ax.texts]
    assert counts == [str(v) for v in cm.ravel()]


def test_the_reliability_diagram_puts_each_bin_at_its_mean_confidence(captured):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((500, 3)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, 3, 500)
    conf, acc, count = metrics.calibration_bins(probs, y)
    plots.reliability_diagram(conf, acc, count, 0.1, "unused.png", "digits: settings")
    ax = captured[0].axes[0]
    points = next(line for line in ax.get_lines() if line.get_marker() == "o")
    # independent: each non-empty bin's mean top-class probability, computed here
    top = probs.max(1)
    edges = np.linspace(0, 1, 16)
    means = [top[(top > lo) & (top <= hi)].mean() for lo, hi in zip(edges[:-1], edges[1:],
                                                                     strict=True)
             if np.any((top > lo) & (top <= hi))]
    np.testing.assert_allclose(points.get_xdata(), means, rtol=1e-12)
    used = count[count > 0]
    assert [t.get_text() for t in ax.texts] == [str(int(k)) for k in used]
    assert "digits: settings" in ax.get_title() and "samples per bin" in ax.get_title()


def test_loss_axes_have_readable_tick_labels_within_a_decade(captured):
    history = History(epochs=[{"epoch": e, "train_loss": 0.6 - 0.04 * e,
                               "train_accuracy": 0.5 + 0.04 * e} for e in range(1, 11)])
    plots.learning_curves(history, "unused.png", "title")
    ax_loss = captured[0].axes[0]
    low, high = ax_loss.get_ylim()
    labels = [(t.get_position()[1], t.get_text()) for t in ax_loss.get_yticklabels()]
    visible = [text for value, text in labels if low <= value <= high and text]
    assert len(visible) >= 2, labels  # matplotlib's default log axis labels none here
    assert all(float(text) > 0 for text in visible)


def test_titles_name_the_settings_that_shape_the_curves():
    config = TrainConfig(label_smoothing=0.1, class_weights="inverse").resolved()
    text = describe(config)
    assert "label smoothing 0.1" in text and "inverse class weights" in text
    assert "cosine schedule" in text and "sgd lr 0.1" in text
