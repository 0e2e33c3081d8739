"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from dqm_playground_ds.hooks import ReportPathHook
from dqm_playground_ds.tracking import TrackingHook

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment overrides single parameters, not whole pipeline groups.
    "merge_strategy": {"parameters": "soft"},
}

# Prints where the HTML report is at the end of a `kedro run` that wrote it.
HOOKS = (ReportPathHook(), TrackingHook())
