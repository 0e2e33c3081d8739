"""Item 3: single-bit flips inside ``Value`` baskets are detected by the per-histogram integrity
check; no valid file (every fixture, the whole bundled sample) is ever flagged."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from dqm_playground_ds.extraction import extract_many
from dqm_playground_ds.readers.dqmio import IntegrityError, read_dqmio
from dqm_playground_ds.readers.dqmio.integrity import (
    content_outliers,
    residuals,
    structure_outliers,
)
from dqm_playground_ds.readers.dqmio.layout import parse_entry
from dqm_playground_ds.readers.dqmio.reader import _strip_flow
from dqm_playground_ds.sources import DQMIOFiles
from tests.faults.conftest import FIXTURES, SAMPLE, SMALL
from tests.faults.flips import flip_outcomes, value_basket_ranges

VALID = [
    *sorted(p for p in FIXTURES.glob("*.root") if p.name != "not_dqmio.root"),
    *sorted(SAMPLE.glob("*.root")),
]


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_no_false_alarm_on_any_fixture_or_sample_file(path):
    verified = read_dqmio(path, include_run_level=True)  # raises IntegrityError on a false alarm
    plain = read_dqmio(path, include_run_level=True, verify=False)
    assert len(verified) == len(plain) > 0


@pytest.mark.parametrize("name", SMALL)
def test_flips_in_sample_value_baskets_are_detected(name, tmp_path):
    outcomes, notes = flip_outcomes(SAMPLE / name, tmp_path, n=120, seed=15)
    assert outcomes["crash"] == 0, notes
    assert outcomes["detected"] >= 0.95 * 120, (outcomes, notes)
    assert outcomes["silent"] <= 0.02 * 120, (outcomes, notes)


def test_flips_in_the_many_baskets_fixture_are_detected(tmp_path):
    outcomes, notes = flip_outcomes(FIXTURES / "many_baskets.root", tmp_path, n=120, seed=3)
    assert outcomes["crash"] == 0, notes
    assert outcomes["detected"] + outcomes["harmless"] >= 0.95 * 120, (outcomes, notes)


def test_flips_in_the_all_types_fixture_never_crash(tmp_path):
    """Tiny MEs (7 LS) with statistics that ROOT never filled: detection is weaker, never a crash."""
    outcomes, notes = flip_outcomes(FIXTURES / "all_types.root", tmp_path, n=120, seed=7)
    assert outcomes["crash"] == 0, notes
    assert outcomes["detected"] + outcomes["harmless"] >= 0.80 * 120, (outcomes, notes)


def test_a_corrupt_file_is_a_bad_row_naming_the_histograms(tmp_path):
    """A flip that decompresses and parses fine: only the integrity check sees it."""
    source = SAMPLE / SMALL[0]
    folder = tmp_path / "in"
    folder.mkdir()
    start, end = value_basket_ranges(source)[0]
    data = source.read_bytes()
    for offset in range(start + 200, end, 97):  # find one flip that decodes and is caught
        flipped = bytearray(data)
        flipped[offset] ^= 0x10
        path = folder / "corrupt.root"
        path.write_bytes(bytes(flipped))
        try:
            read_dqmio(path)
        except IntegrityError:
            break
        except Exception:  # other detections (decompression, layout) are not the subject here
            continue
    else:
        pytest.fail("no flip gave an integrity failure")
    index = extract_many(DQMIOFiles(path=str(folder)), tmp_path / "o", progress=False)
    assert index["status"].tolist() == ["bad"]
    error = index["error"].iloc[0]
    assert "integrity check failed" in error and "run 315357 lumi" in error


# -- the checks on synthetic entries ----------------------------------------------------------------
def _entries(path: Path) -> tuple[bytes, int]:
    """One serialized TH1F entry of a sample file (its bytes) and its type code."""
    import uproot

    with uproot.open(path) as f:
        branch = f["TH1Fs"]["Value"]
        basket = branch.basket(0)
        offsets = basket.byte_offsets
        return bytes(basket.data[offsets[0] : offsets[1]]), 3


def test_content_check_catches_one_changed_bin():
    entry, code = _entries(SAMPLE / SMALL[0])
    layout = parse_entry(entry, code)
    buf = np.frombuffer(entry * 5, dtype=np.uint8).copy()
    starts = np.arange(5, dtype=np.int64) * len(entry)
    pos = starts[2] + layout.array_rel + 4 + 4 * 10  # bin 10 of the third entry
    value = struct.unpack(">f", bytes(buf[pos : pos + 4]))[0]
    buf[pos : pos + 4] = np.frombuffer(struct.pack(">f", value + 1.0), np.uint8)
    values = np.stack([buf[s + layout.array_rel + 4 : s + len(entry)].view(">f4") for s in starts])
    entries = np.array(
        [struct.unpack(">d", bytes(buf[s + layout.entries_rel :][:8]))[0] for s in starts]
    )
    tsumw = np.array(
        [struct.unpack(">d", bytes(buf[s + layout.entries_rel + 8 :][:8]))[0] for s in starts]
    )
    r = residuals(values, _strip_flow(values, layout), layout, entries, tsumw)
    assert content_outliers(r, layout.n_values).tolist() == [False, False, True, False, False]
    assert not structure_outliers(buf, starts, layout).any()  # bins are not structure


def test_structure_check_catches_a_changed_title_byte():
    entry, code = _entries(SAMPLE / SMALL[0])
    layout = parse_entry(entry, code)
    buf = np.frombuffer(entry * 4, dtype=np.uint8).copy()
    starts = np.arange(4, dtype=np.int64) * len(entry)
    buf[starts[1] + 20] ^= 0x01  # inside TNamed (name/title)
    assert structure_outliers(buf, starts, layout).tolist() == [False, True, False, False]
