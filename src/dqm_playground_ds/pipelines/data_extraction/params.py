"""``params:data_extraction``: which MEs to take, how to treat gaps and repeats, how many workers."""

from __future__ import annotations

import warnings
from typing import Any

from pydantic import Field, StrictBool, field_validator

from dqm_playground_ds.extraction import Request, check_pattern
from dqm_playground_ds.pipelines.params import Params
from dqm_playground_ds.schema import Duplicates, MissingMEs
from dqm_playground_ds.workers import resolve_jobs


class ExtractionParams(Params):
    me: list[str] | None = None  # exact DQMIO paths or full-match regular expressions; null = all
    include_run_level: StrictBool = False  # true also keeps run-level MEs (lumi = 0)
    missing_me: MissingMEs = (
        "raise"  # an input lacking a requested ME: raise (recorded bad) | ignore
    )
    duplicates: Duplicates = "raise"  # the same (run, lumi, me) in two inputs: raise | sum | first
    progress: StrictBool = True
    workers: int | None = Field(None, ge=1, strict=True)  # reading processes; null = usable CPUs
    retry_bad: StrictBool = False  # read inputs recorded as bad in an earlier run again

    @field_validator("me", mode="before")
    @classmethod
    def _patterns(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if value is None:
            return None
        if not isinstance(value, (list, tuple)):
            raise ValueError(
                "must be a list of ME names or regular expressions (or null for all), "
                f"got {value!r}"
            )
        return [check_pattern(m, "data_extraction.me") for m in value]

    @field_validator("missing_me", mode="before")
    @classmethod
    def _legacy_bad(cls, value: Any) -> Any:
        if value == "bad":  # the name before the shared MissingMEs policy
            warnings.warn(
                "data_extraction.missing_me: 'bad' is now called 'raise' (the input is recorded "
                "bad and skipped)",
                FutureWarning,
                stacklevel=2,
            )
            return "raise"
        return value

    def jobs(self, store: Any = None) -> int:
        """Reading processes: ``workers``, or when null every usable CPU (one for a store whose
        filesystem lives in this process, such as ``memory://``)."""
        if self.workers is None and not getattr(store, "shared_between_processes", True):
            return 1
        return resolve_jobs(self.workers)

    def request(self) -> Request:
        """What every input is read for (part of each partition's fingerprint)."""
        return Request(
            me=tuple(self.me) if self.me is not None else None,
            include_run_level=self.include_run_level,
            missing=self.missing_me,
        )
