"""FigureDataset: bounded PNGs, figures closed after saving, loadable, stale PNGs removed."""

from __future__ import annotations

import pytest
from kedro.io import DatasetError

from dqm_playground_ds.datasets import FigureDataset
from dqm_playground_ds.datasets.figures import png_size
from dqm_playground_ds.reporting.plotting.style import Style, new_figure


def _figure(width_in: float, dpi: int = 100):
    fig = new_figure((width_in, 2.0), Style(dpi=dpi))
    fig.subplots().plot([0, 1], [0, 1])
    return fig


def test_a_wide_figure_is_saved_at_most_max_width_pixels(tmp_path):
    ds = FigureDataset(str(tmp_path / "wide.png"), max_width_px=4000)
    fig = _figure(60.0)  # 6000 px at its 100 dpi
    ds.save(fig)
    width, height = png_size(ds.load())
    assert 3990 <= width <= 4000 and height == pytest.approx(width / 30, abs=2)
    assert not fig.axes  # closed: its artists are freed


def test_folder_of_figures_loads_as_bytes_and_drops_stale_files(tmp_path):
    ds = FigureDataset(str(tmp_path / "plots"))
    ds.save({"a.png": _figure(4), "b.png": _figure(4)})
    assert sorted(ds.load()) == ["a.png", "b.png"]
    ds.save({"b.png": _figure(5)})
    loaded = ds.load()
    assert list(loaded) == ["b.png"] and png_size(loaded["b.png"])[0] == 500
    assert not list(tmp_path.rglob(".tmp-*"))


def test_bad_data_is_refused_without_writing(tmp_path):
    ds = FigureDataset(str(tmp_path / "plots"))
    with pytest.raises(DatasetError, match=r"must be 'x\.png'"):
        ds.save({"../x.png": _figure(2)})
    with pytest.raises(DatasetError, match="mapping"):
        FigureDataset(str(tmp_path / "one.png")).save({"a.png": _figure(2)})
    assert not (tmp_path / "one.png").exists()
