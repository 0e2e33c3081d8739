"""Figures in these tests are small (low dpi): what is checked is their content, not pixels."""

from __future__ import annotations

import matplotlib
import pytest

from dqm_playground_ds.reporting.plotting import Style, figure_to_png

matplotlib.use("Agg")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def style() -> Style:
    return Style(dpi=30)


@pytest.fixture
def rendered():
    """Draw a figure to PNG (what a dataset or the report does) and return the bytes."""

    def render(fig) -> bytes:
        png = figure_to_png(fig)
        assert png[:8] == PNG and len(png) > 500
        return png

    return render
