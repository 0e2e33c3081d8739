"""Axes of a histogram row (binning columns of the histogram schema) with configured titles."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from dqm_playground_ds.reporting.plotting import Axis

#: regular expression on the full ME path (full match) -> {"x": title, "y": title}
AxisName = Literal["x", "y"]
AxisTitles = Mapping[str, Mapping[AxisName, str]]  # ME regex -> {x: title, y: title}


def axis_titles(me: str, titles: AxisTitles) -> tuple[str, str]:
    """x and y titles of ``me``: every matching pattern in order, later ones win."""
    x = y = ""
    for pattern, t in (titles or {}).items():
        if re.fullmatch(pattern, me):
            x, y = t.get("x", x), t.get("y", y)
    return x, y


def histogram_axes(row: Mapping[str, Any], titles: AxisTitles) -> tuple[Axis, Axis | None]:
    """The x axis (and the y axis of a 2D ME) of a histogram or reference row."""
    xt, yt = axis_titles(str(row["me"]), titles)
    x = Axis(float(row["x_min"]), float(row["x_max"]), int(row["x_bins"]), xt)
    if int(row["dim"]) != 2:
        return x, None
    return x, Axis(float(row["y_min"]), float(row["y_max"]), int(row["y_bins"]), yt)
