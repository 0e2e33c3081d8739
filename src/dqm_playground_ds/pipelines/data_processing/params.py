"""``params:data_processing``: split, labels, quality cuts, preprocessing variants."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from dqm_playground_ds.pipelines.params import Params
from dqm_playground_ds.processing.split import RunSplit, SplitError


class LabelParams(Params):
    use_dcs: bool = True  # DCS-on but not golden = bad (weak label); false: not golden = bad
    bad_runs: list[int] = Field(default_factory=list)  # runs declared bad as a whole
    certified_runs: Literal["golden", "dcs"] = "golden"
    overlapping_ranges: Literal["raise", "merge"] = "raise"


class QualityCut(Params):
    min_entries: float | None = Field(None, ge=0, allow_inf_nan=False)
    min_entries_per_bin: float | None = Field(None, ge=0, allow_inf_nan=False)


class QualityParams(Params):
    min_entries: float = Field(100, ge=0, allow_inf_nan=False)
    min_entries_per_bin: float = Field(5.0, ge=0, allow_inf_nan=False)
    per_me: dict[str, QualityCut] = Field(default_factory=dict)  # regex (full match) -> cuts

    @field_validator("per_me")
    @classmethod
    def _regexes(cls, value: dict[str, QualityCut]) -> dict[str, QualityCut]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                msg = f"per_me[{pattern!r}]: not a valid regular expression ({exc})"
                raise ValueError(msg) from None
        return value

    def cuts(self) -> dict[str, Any]:
        """The mapping :class:`~dqm_playground_ds.processing.preprocessing.QualityCuts` reads."""
        per_me = {k: v.model_dump(exclude_none=True) for k, v in self.per_me.items()}
        return {"min_entries": self.min_entries, "min_entries_per_bin": self.min_entries_per_bin,
                "per_me": per_me}  # fmt: skip


def _one_default_variant() -> dict[str, dict[str, Any]]:
    return {"default": {}}


class DataProcessingParams(Params):
    split: dict[str, Any] | None = None  # or the split_definition dataset
    labels: LabelParams = LabelParams()
    quality: QualityParams = QualityParams()
    min_train_lumisections: int = Field(10, ge=0)
    preprocessing: dict[str, dict[str, Any]] = Field(default_factory=_one_default_variant)
    chunk_size: int = Field(4096, ge=1)

    @field_validator("split")
    @classmethod
    def _split(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value:
            try:
                RunSplit.from_mapping(value)
            except SplitError as exc:
                raise ValueError(str(exc)) from None
        return value
