"""The HEP look shared by every figure: mplhep's CMS style, Agg rendering, no pyplot state.

Figures are built as plain :class:`matplotlib.figure.Figure` objects with an Agg canvas attached,
never through ``pyplot``: a batch run opens hundreds of them without pyplot's global registry (and
its "too many figures" warnings), nothing depends on a display, and a notebook's own backend is left
alone. Helpers build their figures inside :func:`hep_style`; matplotlib still reads a few settings
when a figure is *drawn* (lazily created ticks, mathtext fonts), so whoever saves them should draw
in the same style: :func:`figure_to_png` does, and a batch job calls :func:`use_hep_style` once
(the Kedro pipeline does, since its datasets save the figures after the node returned).

The experiment label is one mathtext string, not mplhep's ``exp_label``: that one draws the whole
figure twice to place its words, which tripled the cost of every plot.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import matplotlib as mpl
import mplhep as hep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

__all__ = [
    "DEFAULT_STYLE",
    "LABEL_COLORS",
    "Style",
    "edges",
    "figure_to_png",
    "hep_style",
    "label_axes",
    "new_figure",
    "safe_filename",
    "short_name",
    "styled",
    "use_hep_style",
]

P = ParamSpec("P")
R = TypeVar("R")

# CMS style, scaled for figures of ~8-16 inch read on a screen rather than printed in a paper
_RC: dict[str, Any] = {
    **hep.style.CMS,
    "font.size": 17,
    "axes.linewidth": 1.5,
    "xtick.major.size": 8,
    "xtick.minor.size": 4,
    "ytick.major.size": 8,
    "ytick.minor.size": 4,
    "legend.fontsize": "x-small",
    "axes.titlesize": "small",
    "savefig.dpi": "figure",
    "image.cmap": "viridis",
}

# certification labels, as a shifter sees them in the run registry
LABEL_COLORS = {"good": "#2ca02c", "bad": "#d62728", "unknown": "#9c9ca1"}


@dataclass(frozen=True)
class Style:
    """What every figure shares: the experiment label, its status text and the resolution.

    ``text`` is the status next to the experiment name ("Private Work" for anything not approved).
    """

    experiment: str = "CMS"
    text: str = "Private Work"
    dpi: int = 100

    @classmethod
    def from_dict(cls, params: dict[str, Any] | None) -> Style:
        params = dict(params or {})
        unknown = set(params) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"style: unknown key(s) {sorted(unknown)}")
        return cls(**params)


DEFAULT_STYLE = Style()


@contextmanager
def hep_style() -> Iterator[None]:
    """mplhep's CMS style for the duration of the block (rcParams are restored afterwards)."""
    with mpl.rc_context(_RC):  # type: ignore[arg-type]  # mpl types keys as a Literal
        yield


def use_hep_style() -> None:
    """Make the style global (batch jobs and notebooks that save or show figures themselves)."""
    mpl.rcParams.update(_RC)  # type: ignore[arg-type]


def styled(func: Callable[P, R]) -> Callable[P, R]:
    """Run a figure builder inside :func:`hep_style`."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with hep_style():
            return func(*args, **kwargs)

    return wrapper


def new_figure(figsize: tuple[float, float], style: Style, **kwargs: Any) -> Figure:
    """A pyplot-free figure with an Agg canvas and constrained layout."""
    fig = Figure(figsize=figsize, dpi=style.dpi, layout=kwargs.pop("layout", "constrained"))
    FigureCanvasAgg(fig)
    return fig


def _mathtext_words(text: str) -> str:
    return re.sub(r"([\\$_^{}%#&~])", r"\\\1", text).replace(" ", r"\ ")


def label_axes(ax: Axes, style: Style, rlabel: str | None = None) -> None:
    """Experiment label above the top-left corner (``CMS Private Work``), ``rlabel`` above the
    top-right one (run, LS)."""
    parts = []
    if style.experiment:
        parts.append(rf"$\bf{{{_mathtext_words(style.experiment)}}}$")
    if style.text:
        parts.append(rf"$\it{{{_mathtext_words(style.text)}}}$")
    if parts:
        ax.text(
            0.0,
            1.015,
            " ".join(parts),
            transform=ax.transAxes,
            ha="left",
            va="bottom",
            fontsize=mpl.rcParams["font.size"] * 1.1,
        )
    if rlabel:
        ax.text(
            1.0, 1.015, rlabel, transform=ax.transAxes, ha="right", va="bottom", fontsize="small"
        )


def _last_drawn(fig: Figure) -> tuple[np.ndarray, float] | None:
    """RGBA pixels and dpi of the figure's last draw on its Agg canvas, if it has one of the
    figure's current size."""
    renderer = getattr(fig.canvas, "renderer", None)
    if not isinstance(fig.canvas, FigureCanvasAgg) or renderer is None:
        return None
    width, height = fig.get_size_inches() * renderer.dpi
    if (round(width), round(height)) != (int(renderer.width), int(renderer.height)):
        return None
    return np.asarray(fig.canvas.buffer_rgba()), float(renderer.dpi)


def figure_to_png(
    fig: Figure, dpi: float | None = None, *, reuse_drawn: bool = False, palette: bool = False
) -> bytes:
    """PNG bytes of a figure (for embedding in a report), drawn in the HEP style.

    ``dpi`` defaults to the figure's. With ``reuse_drawn`` a figure already drawn at that
    resolution (e.g. just saved by the catalog) is encoded from its canvas instead of being drawn
    again: drawing is most of the cost of a plot; only for figures not modified since. ``palette``
    stores 256 colours instead of true colour: plots have few colours, and the file is 2-4x
    smaller with no visible change.
    """
    drawn = _last_drawn(fig) if reuse_drawn else None
    if drawn is not None and (dpi is None or abs(dpi - drawn[1]) < 0.5):
        image = Image.fromarray(drawn[0])
    else:
        buf = io.BytesIO()
        with hep_style():
            fig.savefig(buf, format="png", dpi=dpi or fig.dpi, facecolor="white")
        if not palette:
            return buf.getvalue()
        image = Image.open(buf)
    image = image.convert("RGB")
    if palette:
        image = image.quantize(256, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    image.save(out, format="png", optimize=palette)
    return out.getvalue()


def short_name(me: str) -> str:
    """Last component of a DQMIO path: what shifters call the ME (``charge_PXLayer_1``)."""
    return me.rstrip("/").rsplit("/", 1)[-1] or me


def safe_filename(name: str, taken: Sequence[str] = ()) -> str:
    """A file-name stem from an ME or any label: no path separators, no shell-hostile characters.

    The short name is used when it is free; otherwise the whole path is flattened.
    """
    for candidate in (short_name(name), name.replace("/", "__")):
        stem = re.sub(r"[^A-Za-z0-9._+-]+", "_", candidate).strip("._") or "unnamed"
        if stem not in taken:
            return stem
    return stem + f"_{len(taken)}"


def edges(lo: float, hi: float, n: int) -> np.ndarray:
    """Bin edges of a regular axis."""
    return np.linspace(float(lo), float(hi), int(n) + 1)
