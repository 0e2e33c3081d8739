"""Figures as PNG files: saved with a bounded size, closed after saving, loadable as PNG bytes.

Why not ``matplotlib.MatplotlibDataset``: it cannot load, so the report needed the Figure objects
kept alive in memory for the whole run (hundreds of them with many runs), and it writes whatever
size a figure asks for (a 66,000 px wide PNG with 500 runs). Here every figure is rendered once,
capped at ``max_width_px`` x ``max_height_px`` (the resolution is lowered, the content kept),
written atomically and closed; consumers such as the report get the PNG bytes back from disk.

``filepath`` ending in ``.png`` holds one figure; otherwise it is a folder and the data is a
``{file name: Figure}`` mapping (one PNG per key). ``overwrite`` removes the folder's PNGs that the
new mapping does not hold (the plots of an earlier run), only after the new ones are written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

import fsspec
from kedro.io import AbstractDataset, DatasetError
from matplotlib.figure import Figure

__all__ = ["FigureDataset", "png_size"]

_PNG = b"\x89PNG\r\n\x1a\n"


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's header."""
    if png[:8] != _PNG or png[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def bounded_dpi(fig: Figure, dpi: float | None, max_width_px: int, max_height_px: int) -> float:
    """The figure's resolution (or ``dpi``), lowered so that the image fits the pixel bounds."""
    width, height = fig.get_size_inches()
    wanted = float(dpi or fig.dpi)
    return max(1.0, min(wanted, max_width_px / width, max_height_px / height))


def close_figure(fig: Figure) -> None:
    """Free a figure's artists (and drop it from pyplot if it was made there)."""
    import matplotlib.pyplot as plt  # only to unregister pyplot figures; Agg is set by the nodes

    plt.close(fig)
    fig.clear()


class FigureDataset(AbstractDataset[Figure | Mapping[str, Figure], bytes | dict[str, bytes]]):
    """One figure (``*.png``) or a folder of figures, saved as bounded PNGs, loaded as bytes."""

    def __init__(
        self,
        filepath: str,
        *,
        dpi: float | None = None,
        max_width_px: int = 4000,
        max_height_px: int = 4000,
        palette: bool = True,
        overwrite: bool = True,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        self._fs, path = fsspec.core.url_to_fs(filepath, **(fs_args or {}))
        self._path = str(path)
        self._filepath = filepath
        self._single = self._path.lower().endswith(".png")
        self._dpi = dpi
        self._max = (int(max_width_px), int(max_height_px))
        self._palette = palette
        self._overwrite = overwrite
        self.metadata = metadata

    # -- helpers ------------------------------------------------------------------------------
    def _png(self, fig: Figure) -> bytes:
        from dqm_playground_ds.reporting.plotting.style import figure_to_png

        if not isinstance(fig, Figure):
            raise DatasetError(f"{self._filepath}: expected a matplotlib Figure, got {type(fig)}")
        dpi = bounded_dpi(fig, self._dpi, *self._max)
        png = figure_to_png(fig, dpi, palette=self._palette)
        width, height = png_size(png)
        if width > self._max[0] or height > self._max[1]:  # rounding of size x dpi
            dpi *= min(self._max[0] / width, self._max[1] / height) * 0.999
            png = figure_to_png(fig, dpi, palette=self._palette)
        return png

    def _write(self, path: str, png: bytes) -> None:
        parent = str(PurePosixPath(path).parent)
        self._fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{PurePosixPath(path).name}"
        try:
            with self._fs.open(tmp, "wb") as f:
                f.write(png)
            self._fs.mv(tmp, path)
        except BaseException:
            if self._fs.exists(tmp):
                self._fs.rm(tmp)
            raise

    # -- dataset API ----------------------------------------------------------------------------
    def save(self, data: Figure | Mapping[str, Figure]) -> None:
        if self._single:
            if isinstance(data, Mapping):
                raise DatasetError(f"{self._filepath}: one figure expected, got a mapping")
            self._write(self._path, self._png(data))
            close_figure(data)
            return
        if not isinstance(data, Mapping):
            raise DatasetError(f"{self._filepath}: a {{file name: Figure}} mapping expected")
        names = set()
        for name, fig in data.items():
            if "/" in name or not name.lower().endswith(".png"):
                raise DatasetError(f"{self._filepath}: figure name {name!r} must be 'x.png'")
            self._write(f"{self._path}/{name}", self._png(fig))
            close_figure(fig)  # one at a time: memory follows one figure, not all of them
            names.add(name)
        if self._overwrite and self._fs.isdir(self._path):
            for old in self._fs.glob(f"{self._path}/*.png"):
                if PurePosixPath(old).name not in names:
                    self._fs.rm(old)
        self._fs.makedirs(self._path, exist_ok=True)

    def load(self) -> bytes | dict[str, bytes]:
        if self._single:
            return self._fs.cat_file(self._path)
        if not self._fs.isdir(self._path):
            return {}
        paths = sorted(self._fs.glob(f"{self._path}/*.png"))
        return {PurePosixPath(p).name: self._fs.cat_file(p) for p in paths}

    def _exists(self) -> bool:
        return self._fs.exists(self._path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "max_px": self._max, "dpi": self._dpi}


def widest(pngs: Mapping[str, bytes] | bytes) -> int:
    """Width in pixels of the widest PNG (0 for none)."""
    items = [pngs] if isinstance(pngs, bytes) else list(pngs.values())
    return max((png_size(p)[0] for p in items), default=0)
