"""``FullName`` from raw basket bytes: the strings ROOT wrote, factorized exactly."""

from __future__ import annotations

import numpy as np
import pytest
import uproot

from dqm_playground_ds.readers.dqmio import DQMIOError, DQMIOFile, names
from dqm_playground_ds.readers.dqmio.layout import TYPE_NAMES


def _root_strings(strings: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """A basket's bytes and entry offsets as ROOT writes ``std::string`` entries."""
    out, offsets = bytearray(), [0]
    for s in strings:
        if len(s) < 255:
            out += bytes([len(s)]) + s
        else:
            out += b"\xff" + len(s).to_bytes(4, "big") + s
        offsets.append(len(out))
    return np.frombuffer(bytes(out), dtype=np.uint8), np.array(offsets)


def _decode(chars: np.ndarray, lengths: np.ndarray) -> list[str]:
    ends = np.cumsum(lengths)
    return [chars[e - n : e].tobytes().decode() for e, n in zip(ends, lengths, strict=True)]


def test_parse_strings_short_long_and_empty():
    strings = [b"A/b", b"", "Pixel/\u00e9t\u00e9".encode(), b"L" * 300, b"A/b"]
    data, offsets = _root_strings(strings)
    chars, lengths = names.parse_strings(data, offsets)
    assert lengths.tolist() == [len(s) for s in strings]
    assert _decode(chars, lengths) == [s.decode() for s in strings]


def test_parse_strings_rejects_an_entry_that_is_not_one_string():
    data, offsets = _root_strings([b"abc", b"defg"])
    data = data.copy()
    data[4] = 9  # the second entry's length byte now says 9 characters, it holds 4
    with pytest.raises(names.NamesError, match="entry 1: 5 bytes"):
        names.parse_strings(data, offsets)
    with pytest.raises(names.NamesError, match="run past"):
        names.parse_strings(data, np.array([0, 4, 40]))


def _check(strings: list[str]) -> None:
    encoded = [s.encode() for s in strings]
    chars = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    codes, uniques = names.factorize(chars, np.array([len(s) for s in encoded]))
    assert uniques.tolist() == sorted(set(strings))
    assert uniques[codes].tolist() == strings


def test_factorize_is_exact_and_sorted():
    rng = np.random.default_rng(1)
    pool = ["B/x", "A/y", "A/y2", "A/y\u00e9", "", "Z" * 300, "a", "A/yA"]
    _check([pool[i] for i in rng.integers(0, len(pool), size=5000)])
    _check([])


def test_factorize_survives_hash_collisions(monkeypatch):
    monkeypatch.setattr(names, "_MIX", np.uint64(0))  # every name hashes alike
    _check(["B/x", "A/y", "B/x", "C", "A/y", "A/y1"])


def test_names_equal_uproots(dqmio_fixture):
    for fixture in ("all_types", "many_baskets", "merged"):
        path, _ = dqmio_fixture(fixture)
        with DQMIOFile(path) as f, uproot.open(path) as raw:
            for t in f._type_codes():
                expected = raw[TYPE_NAMES[t]]["FullName"].array(library="np").tolist()
                for threads in (1, 2):
                    f._names.clear()
                    codes, uniques = f._name_codes(t, threads)
                    assert uniques[codes].tolist() == expected
                    assert uniques.tolist() == sorted(set(expected))


def test_a_damaged_name_basket_is_named(dqmio_fixture, tmp_path):
    path, _ = dqmio_fixture("many_baskets")
    with uproot.open(path) as raw:
        branch = raw["TH1Fs"]["FullName"]
        seek = int(branch.member("fBasketSeek")[0])
        keylen = int(branch.basket(0).member("fKeylen"))
    damaged = tmp_path / "damaged.root"
    blob = bytearray(path.read_bytes())
    blob[seek + keylen : seek + keylen + 16] = b"\x00" * 16  # the compressed names
    damaged.write_bytes(bytes(blob))
    with DQMIOFile(damaged) as f, pytest.raises(DQMIOError, match="TH1Fs/FullName basket 0"):
        f.list_mes()


def test_repeated_blocks_take_the_first_blocks_codes():
    block = ["Pix/b", "Pix/a", "Strip/c", "Pix/a2"]
    _check(block * 50)  # every LS the same list
    _check(block * 20 + ["Pix/a", "Run/only"])  # a shorter last block and a new name
    changed = block * 10 + ["Pix/b", "Pix/x", "Strip/c", "Pix/a2"] + block * 5  # one LS differs
    _check(changed)
    _check(["A", "B", "A", "C"] * 10)  # the first name twice in a block: no false period
    _check(["same"] * 100)
    _check(["", "", "x"] * 7)
    period, blocks = names._repetition(
        np.frombuffer("".join(block * 50).encode(), dtype=np.uint8),
        np.array([len(s) for s in block * 50]),
    )
    assert (period, blocks) == (4, 50)  # the fast path is taken
