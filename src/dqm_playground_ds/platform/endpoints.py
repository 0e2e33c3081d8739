"""The playground's list endpoints and their filters, as the contract (platform-api.md) states them.

django-filter silently ignores a filter it does not know, so a misspelt filter returns everything;
the client checks names against this table first and suggests the closest one.

Some filters exist on the deployed server but do not work (issue 12): on certifications ``id`` is
ignored, ``lumisection_certifications?run=`` is a 500 and ``?lumisection=`` matches an internal id,
not the LS number. The client applies those filters itself on the fetched records
(``local_filters``) and refuses the ones that cannot work (``refused``, with the reason). A
non-numeric ``__in`` value is a 500 there: values are checked before anything is sent.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

STAT_FIELDS = ("entries", "mean", "rms", "skewness", "kurtosis")
# extensions a server may advertise at /api/capabilities/ (the deployed playground has none)
PREDICTIONS_EXTENSION = "dqm-playground-ds/predictions/v1"  # docs/prediction-payload.md
TASKS_EXTENSION = "dqm-playground-ds/tasks/v1"  # POST tasks/ with a split body
CERT_FLAGS = tuple(
    f"rr_is_{c}_good"
    for c in (
        "pixel",
        "strip",
        "ecal",
        "hcal",
        "dt",
        "csc",
        "tracking",
        "muon",
        "egamma",
        "tau",
        "jetmet",
        "btag",
    )
)


def _range(field: str, ops: Iterable[str] = ("", "__gte", "__lte")) -> list[str]:
    return [field + op for op in ops]


_LS_HISTOGRAM_FILTERS = (
    "title",
    *_range("lumisection__run__run_number", ("", "__gte", "__lte", "__in")),
    *_range("lumisection__ls_number", ("", "__gte", "__lte", "__in")),
    "entries__gte",
    "entries__lte",
    "source_data_file",
    "source_data_file__filepath__contains",
)


@dataclass(frozen=True)
class Endpoint:
    """One list endpoint: its path under ``/api/``, filters, and which filters may repeat."""

    name: str
    filters: frozenset[str]
    repeatable: frozenset[str] = frozenset()
    local_filters: frozenset[str] = frozenset()  # applied by the client to the fetched records
    refused: Mapping[str, str] = field(default_factory=dict)  # filter -> why it cannot work
    join_duplicates: bool = False  # the server may list a record twice (a join): de-duplicate

    @property
    def path(self) -> str:
        return f"/api/{self.name}/"


ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint(
            "runs",
            frozenset(
                (
                    "run_number",
                    "run_date",
                    "year",
                    "period",
                    "date",
                    "oms_fill",
                    "oms_lumisections",
                    "oms_initial_lumi",
                    "oms_end_lumi",
                )
            ),
        ),
        Endpoint("lumisections", frozenset(("run", "ls_number", "date", "oms_zerobias_rate"))),
        Endpoint(
            "run_histograms",
            frozenset(
                (
                    "title",
                    "primary_dataset",
                    *_range("run__run_number", ("", "__gte", "__lte", "__in")),
                    *(f"{s}{op}" for s in STAT_FIELDS for op in ("__gte", "__lte")),
                )
            ),
        ),
        Endpoint(
            "lumisection_histograms_1d", frozenset(_LS_HISTOGRAM_FILTERS), frozenset({"title"})
        ),
        Endpoint(
            "lumisection_histograms_2d", frozenset(_LS_HISTOGRAM_FILTERS), frozenset({"title"})
        ),
        Endpoint(
            "histogram_data_files",
            join_duplicates=True,  # ?granularity= lists a file once per content (1D and 2D)
            filters=frozenset(
                (
                    "filepath__contains",
                    "data_era",
                    "processing_complete",
                    "data_dimensionality",
                    "granularity",
                    "entries_total__gt",
                    "entries_total__lt",
                )
            ),
        ),
        Endpoint(
            "run_certifications",
            frozenset(("run", "date")),
            local_filters=frozenset(("id",)),
            refused={
                name: (
                    "the deployed server ignores it (run certifications carry rr_frac_* "
                    "fractions, no rr_is_* flags): filter lumisection_certifications instead"
                )
                for name in ("rr_is_golden_json", *CERT_FLAGS)
            },
        ),
        Endpoint(
            "lumisection_certifications",
            frozenset(("date", "rr_is_golden_json", *CERT_FLAGS)),
            local_filters=frozenset(("id", "run", "lumisection")),
        ),
        Endpoint("tasks", frozenset()),
        Endpoint("strategies", frozenset()),
        Endpoint("predictions", frozenset()),
    )
}


def histogram_endpoint(dim: int) -> Endpoint:
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 or 2, got {dim!r}")
    return ENDPOINTS[f"lumisection_histograms_{dim}d"]


def _int_values(endpoint: Endpoint, name: str, value: Any) -> list[int]:
    """Every ``__in`` filter of the contract is numeric; the deployed server answers 500 otherwise."""
    values = (
        [value]
        if not isinstance(value, (list, tuple, set, frozenset))
        else sorted(value)
        if isinstance(value, (set, frozenset))
        else list(value)
    )
    if len(values) == 1 and isinstance(values[0], str) and "," in values[0]:
        values = values[0].split(",")
    out = []
    for v in values:
        try:
            if isinstance(v, bool) or float(v) != int(float(v)):
                raise ValueError
            out.append(int(float(v)))
        except (TypeError, ValueError):
            raise ValueError(
                f"{endpoint.name}: {name} takes whole numbers, got {v!r} (the platform would "
                "answer 500 Server Error)"
            ) from None
    if not out:
        raise ValueError(f"{endpoint.name}: {name} needs at least one value")
    return out


def local_matches(endpoint: Endpoint, filters: Mapping[str, Any]) -> Callable[[Any], bool]:
    """A predicate applying the endpoint's client-side filters to a record."""
    wanted = {
        k: {int(x) for x in (v if isinstance(v, (list, tuple, set, frozenset)) else [v])}
        for k, v in filters.items()
        if k in endpoint.local_filters and v is not None
    }

    def match(record: Any) -> bool:
        return all(isinstance(record, Mapping) and record.get(k) in vs for k, vs in wanted.items())

    return match


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode_filters(endpoint: Endpoint, filters: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Query parameters for ``filters``, checked against the endpoint's filters, in a stable order.

    ``None`` values are dropped; ``__in`` filters take a list (sent comma-separated); a repeatable
    filter (``title``) given a list is sent once per value.
    """
    refused = sorted(set(filters) & set(endpoint.refused))
    if refused:
        raise ValueError(
            f"{endpoint.name}: filter(s) {refused} cannot work: {endpoint.refused[refused[0]]}"
        )
    unknown = sorted(set(filters) - endpoint.filters - endpoint.local_filters - {"page"})
    if unknown:
        hints = {
            name: difflib.get_close_matches(name, sorted(endpoint.filters), n=2, cutoff=0.6)
            for name in unknown
        }
        hint = "; ".join(f"{n!r}: did you mean {h}?" for n, h in hints.items() if h)
        raise ValueError(
            f"{endpoint.name}: unknown filter(s) {unknown} (the server would silently ignore "
            f"them){'; ' + hint if hint else ''}. Known: {sorted(endpoint.filters) or 'none'}"
        )
    params: list[tuple[str, str]] = []
    for name in sorted(filters):
        value = filters[name]
        if value is None or name == "page" or name in endpoint.local_filters:
            continue
        if name.endswith("__in"):
            value = _int_values(endpoint, name, value)
        if isinstance(value, (list, tuple, set, frozenset)):
            values = sorted(value) if isinstance(value, (set, frozenset)) else list(value)
            if name.endswith("__in"):
                params.append((name, ",".join(_encode(v) for v in values)))
            elif name in endpoint.repeatable:
                params.extend((name, _encode(v)) for v in values)
            else:
                raise ValueError(f"{endpoint.name}: filter {name!r} takes one value, got {value!r}")
        else:
            params.append((name, _encode(value)))
    return params
