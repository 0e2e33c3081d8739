"""Malformed DQMIO indices written into real ROOT files: clear errors, never a wrong table."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import uproot

from dqm_playground_ds.readers.dqmio import DQMIOError, DQMIOFile, read_dqmio

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "dqmio"


def _with_indices(tmp_path: Path, change) -> Path:
    """A copy of a real fixture whose Indices tree is replaced by an edited one (a newer cycle)."""
    path = tmp_path / "edited.root"
    shutil.copy(FIXTURES / "all_types.root", path)
    with uproot.open(path) as f:
        arrays = f["Indices"].arrays(library="np")
    change(arrays)
    with uproot.update(path) as f:
        f["Indices"] = {k: np.asarray(v) for k, v in arrays.items()}
    return path


def test_edited_indices_are_read(tmp_path):
    path = _with_indices(tmp_path, lambda a: None)
    assert len(read_dqmio(path)) == len(read_dqmio(FIXTURES / "all_types.root"))


def test_unknown_type_code(tmp_path):
    def change(a):
        a["Type"][3] = 42

    with pytest.raises(DQMIOError, match=r"unknown type code\(s\) \[42\]") as err:
        read_dqmio(_with_indices(tmp_path, change))
    assert "edited.root" in str(err.value)


def test_range_past_the_end_of_a_tree(tmp_path):
    def change(a):
        a["LastIndex"][0] = a["LastIndex"][0] + 10_000

    with pytest.raises(DQMIOError, match="Indices points past the end of TH1Fs"):
        read_dqmio(_with_indices(tmp_path, change))


def test_inverted_range(tmp_path):
    def change(a):
        a["FirstIndex"][0], a["LastIndex"][0] = 5, 2

    with pytest.raises(DQMIOError, match=r"Indices row 0: LastIndex 2 < FirstIndex 5"):
        read_dqmio(_with_indices(tmp_path, change))


def test_indices_missing_a_branch(tmp_path):
    path = _with_indices(tmp_path, lambda a: a.pop("Type"))
    with pytest.raises(DQMIOError, match=r"the Indices tree lacks branch\(es\) \[.Type.\]"):
        read_dqmio(path)


def test_unsupported_me_type_is_named():
    """A TProfile requested by name is refused with its type; a regex over everything skips it."""
    path = FIXTURES / "all_types.root"
    with pytest.raises(DQMIOError, match="is a TProfile"):
        read_dqmio(path, me="Tracker/Profiles/mean_charge_vs_ladder")
    assert "Tracker/Profiles/mean_charge_vs_ladder" not in set(read_dqmio(path)["me"])
    with DQMIOFile(path) as f:
        mes = f.list_mes().set_index("me")
    assert mes.loc["Tracker/Profiles/mean_charge_vs_ladder", "type"] == "TProfile"
    assert mes.loc["Tracker/Profiles/mean_charge_vs_ladder", "dim"] == 0
