"""The ML4DQM playground platform: REST client, histogram source, tasks and prediction upload.

Domain library: no Kedro here. The local server lives in ``platform.server`` (extra ``server``).
"""

from dqm_playground_ds.platform.client import TOKEN_ENV, PlaygroundClient, histogram_filters
from dqm_playground_ds.platform.errors import (
    AuthenticationError,
    BadRequestError,
    CapabilityError,
    DeadlineError,
    NotFoundError,
    PaginationError,
    ParsingError,
    PlaygroundError,
    PlaygroundHTTPError,
    RecordError,
    ResponseError,
    RetryError,
)
from dqm_playground_ds.platform.tasks import TaskError, split_to_task, task_to_split
from dqm_playground_ds.platform.upload import (
    PAYLOAD_SCHEMA,
    PayloadError,
    UploadJournal,
    UploadReport,
    build_payload,
    upload_predictions,
)

__all__ = [
    "PAYLOAD_SCHEMA",
    "TOKEN_ENV",
    "AuthenticationError",
    "BadRequestError",
    "CapabilityError",
    "DeadlineError",
    "NotFoundError",
    "PaginationError",
    "ParsingError",
    "PayloadError",
    "PlaygroundAPI",
    "PlaygroundClient",
    "PlaygroundError",
    "PlaygroundHTTPError",
    "RecordError",
    "ResponseError",
    "RetryError",
    "TaskError",
    "UploadJournal",
    "UploadReport",
    "build_payload",
    "histogram_filters",
    "split_to_task",
    "task_to_split",
    "upload_predictions",
]


def __getattr__(name: str) -> object:
    # the histogram source pulls in the DQMIO reader (uproot): imported only when asked for
    if name == "PlaygroundAPI":
        from dqm_playground_ds.platform.source import PlaygroundAPI

        return PlaygroundAPI
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
