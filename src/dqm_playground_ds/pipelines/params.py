"""The one parameter idiom: a typed, frozen pydantic model per pipeline's parameter group.

A node takes ``params:<pipeline>`` (or a sub-group) annotated with the model; Kedro 1.7 validates
typed parameter inputs when it builds the context, so a typo (``active_strategis``) or a wrong type
stops ``kedro run`` before any node runs, naming the key. The model's defaults are the only
defaults in code; ``conf/base/parameters_<pipeline>.yml`` states the same values (a test checks it).
"""

from __future__ import annotations

from dqm_playground_ds.config import Config

Params = Config

__all__ = ["Params"]
