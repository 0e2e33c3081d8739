"""The base of every typed configuration: library settings and the pipelines' parameter groups."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class Config(BaseModel):
    """Unknown keys are an error naming the known ones, values are checked, instances immutable."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, populate_by_name=True
    )

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = {key for n, f in cls.model_fields.items() for key in (n, f.alias) if key}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            hints = [
                f"{k!r} (did you mean {close[0]!r}?)"
                if (close := difflib.get_close_matches(k, sorted(known), n=1))
                else repr(k)
                for k in unknown
            ]
            raise ValueError(
                f"unknown key(s) {', '.join(hints)}; known: {sorted(cls._public_keys())}"
            )
        return data

    @classmethod
    def _public_keys(cls) -> list[str]:
        return [f.alias or n for n, f in cls.model_fields.items()]
