"""Platform tasks become the train/apply split; a local YAML file gives the same split offline."""

from __future__ import annotations

import pytest
import yaml

from dqm_playground_ds.platform import CapabilityError, TaskError, split_to_task, task_to_split
from dqm_playground_ds.processing.split import RunSplit
from tests.platform.helpers import RUNS, client_for

RECORD = {
    "id": 1,
    "name": "pixel-ae",
    "training_runs": [{"run_number": RUNS[1], "date": "2018"}, {"run_number": RUNS[0], "date": ""}],
    "testing_runs": [{"run_number": RUNS[2], "date": "2018"}],
    "training_lumisections": [],
    "testing_lumisections": [{"run": 315400, "ls_number": 12, "date": ""}],
    "metadata": "",
}


def test_task_record_to_split():
    split = task_to_split(RECORD)
    assert split == {
        "name": "pixel-ae",
        "train": {"runs": [RUNS[0], RUNS[1]]},
        "apply": {"runs": [RUNS[2]], "lumisections": [[315400, 12]]},
    }
    s = RunSplit.from_mapping(split)
    assert s.assign([RUNS[0], RUNS[2], 315400], [5, 5, 12]).tolist() == ["train", "apply", "apply"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"training_runs": None, "training_lumisections": None}, "no training"),
        ({"testing_runs": [{"run_number": RUNS[0]}]}, "both train and apply"),
        ({"training_runs": [{"run_number": "x"}]}, "not a run"),
        ({"testing_lumisections": [{"run": 1}]}, "not a lumisection"),
    ],
)
def test_malformed_tasks_name_the_task(change, message):
    with pytest.raises(TaskError, match=message) as err:
        task_to_split({**RECORD, **change})
    assert "pixel-ae" in str(err.value)


def test_a_task_lacking_fields():
    with pytest.raises(TaskError, match="lacks field"):
        task_to_split({"id": 3, "name": "x", "training_runs": []})


def test_platform_task_equals_the_local_yaml_file(fresh_platform, tmp_path):
    path = tmp_path / "split.yml"
    path.write_text(
        yaml.safe_dump(
            {"name": "pixel", "train": {"runs": [RUNS[0], RUNS[1]]}, "apply": {"runs": [RUNS[2]]}}
        )
    )
    offline = RunSplit.from_mapping(yaml.safe_load(path.read_text())).to_mapping()
    tid = fresh_platform.store.load_task_file(path)
    with client_for(fresh_platform) as c:
        assert task_to_split(c.task(tid)) == offline
        assert task_to_split(c.task("pixel")) == offline
        fresh_platform.store.create_task(split_to_task(offline))  # the API cannot create tasks
        with pytest.raises(Exception, match="2 task"):
            c.task("pixel")


def test_tasks_cannot_be_created_on_the_deployed_platform(deployed_platform, extended_platform):
    split = {"name": "pixel", "train": {"runs": [RUNS[0]]}, "apply": {"runs": [RUNS[2]]}}
    with (
        client_for(deployed_platform) as c,
        pytest.raises(CapabilityError, match="cannot create tasks"),
    ):
        c.create_task(split_to_task(split))
    assert not [k for k in deployed_platform.requests if k.startswith("POST")]
    with client_for(extended_platform) as c:
        tid = c.create_task(split_to_task(split))["id"]
        assert task_to_split(c.task(tid)) == RunSplit.from_mapping(split).to_mapping()
