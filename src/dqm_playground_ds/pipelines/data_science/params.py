"""``params:data_science``: strategies, injection benchmark, evaluation, verdicts, certification."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from dqm_playground_ds.detection.evaluation import BestStrategyCriteria
from dqm_playground_ds.detection.injection import ANOMALY_TYPES, AnomalyType
from dqm_playground_ds.detection.me_groups import parse_group
from dqm_playground_ds.detection.strategy import StrategyError, StrategySpec
from dqm_playground_ds.pipelines.params import Params
from dqm_playground_ds.workers import resolve_jobs


class InjectionParams(Params):
    """Synthetic anomalies injected into held-out good LS (``injection.DEFAULTS`` per type)."""

    enabled: bool = True
    types: list[AnomalyType] = Field(default_factory=lambda: list(ANOMALY_TYPES))
    n_per_type: int = Field(300, ge=1)
    params: dict[AnomalyType, dict[str, Any]] = Field(default_factory=dict)


class EvaluationParams(Params):
    n_bootstrap: int = Field(200, ge=0)
    roc_points: int = Field(200, ge=2)


class RunVerdictParams(Params):
    """A run is bad when its score passes the run threshold placed at this rate on good runs."""

    false_alarm_rate: float = Field(0.05, gt=0, lt=1)
    min_flagged_lumisections: int = Field(2, ge=1)
    min_flagged_fraction: float = Field(0.05, ge=0, le=1)


class CertificationParams(Params):
    within: Literal["none", "dcs", "golden"] = "none"


class MEGroupParams(Params):
    """Training fanned out over ME groups (pipeline ``me_group``; Argo ``science_me_groups``)."""

    group: str | None = None  # fit_me_group: the group "i/N" this run fits (a runtime param)
    expected: int = Field(0, ge=0)  # train_strategies: N > 0 requires the N group results

    @field_validator("group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None:
            parse_group(value)
        return value


class DataScienceParams(Params):
    seed: int = 20180417
    n_jobs: int | None = None  # processes fitting/scoring MEs in parallel; null = usable CPUs
    calibration_folds: int = Field(3, ge=2)
    active_strategies: list[str] | None = None
    flag_quality_failures: bool = True
    me_scores_json: bool = True
    best_strategy: BestStrategyCriteria = BestStrategyCriteria()
    run_verdicts: RunVerdictParams = RunVerdictParams()
    certification: CertificationParams = CertificationParams()
    strategies: dict[str, dict[str, Any]] = Field(default_factory=dict)  # the catalogue, in YAML
    injection: InjectionParams = InjectionParams()
    evaluation: EvaluationParams = EvaluationParams()
    me_groups: MEGroupParams = MEGroupParams()

    @field_validator("strategies")
    @classmethod
    def _strategies_parse(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, spec in value.items():
            try:
                StrategySpec.from_dict(name, spec)
            except StrategyError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _active_declared(self) -> DataScienceParams:
        if self.active_strategies is not None:
            unknown = [n for n in self.active_strategies if n not in self.strategies]
            if unknown or not self.active_strategies:
                raise ValueError(
                    f"active_strategies {unknown or []} not among {list(self.strategies)}"
                )
        return self

    @field_validator("n_jobs")
    @classmethod
    def _jobs(cls, value: int | None) -> int | None:
        if value is not None and value != -1 and value < 1:
            raise ValueError(f"n_jobs must be >= 1, -1 or null, got {value}")
        return value

    def jobs(self) -> int:
        """The number of worker processes: ``n_jobs``, or every usable CPU when null or -1."""
        return resolve_jobs(self.n_jobs)

    def strategy_specs(self) -> list[StrategySpec]:
        """The strategies to run: ``active_strategies`` (null = all declared), in declared order."""
        names = list(self.strategies) if self.active_strategies is None else self.active_strategies
        if not names:
            raise ValueError("data_science.strategies: no strategy is declared")
        return [StrategySpec.from_dict(n, self.strategies[n]) for n in names]
