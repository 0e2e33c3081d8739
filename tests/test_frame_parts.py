"""A table in parts: built one part at a time, with the columns pd.concat would give them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.frame_parts import FrameParts


def _parts(built: list[str]) -> list:
    def make(name: str, extra: str | None):
        def build() -> pd.DataFrame:
            built.append(name)
            frame = pd.DataFrame({"run": [1, 2], "strategy": pd.array([name] * 2, "string")})
            if extra:
                frame[extra] = [0.5, 1.5]
            return frame

        return build

    return [make("a", "raw_x"), make("b", None), make("c", "raw_y")]


def test_parts_are_built_one_at_a_time_and_concat_like():
    built: list[str] = []
    parts = FrameParts(_parts(built), ["run", "strategy", "raw_x", "raw_y"])
    assert built == []  # nothing is computed before it is asked for
    first = next(iter(parts))
    assert built == ["a"] and list(first.columns) == parts.columns
    assert np.isnan(first["raw_y"]).all()
    expected = pd.concat([make() for make in _parts([])], ignore_index=True)
    pd.testing.assert_frame_equal(parts.to_frame(), expected)


def test_columns_default_to_the_first_parts_and_extra_columns_are_refused():
    parts = FrameParts(_parts([]))
    with pytest.raises(ValueError, match=r"columns \['raw_y'\] outside"):
        parts.to_frame()
    assert FrameParts([]).to_frame().empty
