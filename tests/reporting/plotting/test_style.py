"""The shared look: style parameters, file names, PNG encoding, no leaked rcParams."""

from __future__ import annotations

import matplotlib as mpl
import pytest

from dqm_playground_ds.reporting.plotting import (
    Style,
    figure_to_png,
    hep_style,
    safe_filename,
    short_name,
)
from dqm_playground_ds.reporting.plotting.style import label_axes, new_figure

from .conftest import PNG


def test_style_from_dict_refuses_unknown_keys():
    assert Style.from_dict({"text": "Preliminary", "dpi": 50}) == Style("CMS", "Preliminary", 50)
    assert Style.from_dict(None) == Style()
    with pytest.raises(ValueError, match="unknown"):
        Style.from_dict({"colour": "red"})


def test_hep_style_is_scoped():
    before = mpl.rcParams["font.size"]
    with hep_style():
        assert mpl.rcParams["font.size"] == 17
    assert mpl.rcParams["font.size"] == before


def test_names():
    assert short_name("PixelPhase1/Tracks/charge_PXLayer_1") == "charge_PXLayer_1"
    assert safe_filename("A/B/x y<z>") == "x_y_z"
    assert safe_filename("A/B/x", taken=["x"]) == "A__B__x"


def test_experiment_label_and_png(style):
    fig = new_figure((4, 3), style)
    ax = fig.subplots()
    label_axes(ax, style, "Run 1, LS 2")
    texts = [t.get_text() for t in ax.texts]
    assert any("CMS" in t and "Private" in t for t in texts) and "Run 1, LS 2" in texts
    png = figure_to_png(fig)
    assert png[:8] == PNG
    fig.canvas.draw()
    assert figure_to_png(fig, reuse_drawn=True)[:8] == PNG
    assert figure_to_png(fig, palette=True)[:8] == PNG
