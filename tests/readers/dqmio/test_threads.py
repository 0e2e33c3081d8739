"""Parallel basket reads: the same table whatever the thread count, and no thread outlives a read."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.readers.dqmio import DQMIOError, DQMIOFile, iter_dqmio, read_dqmio
from dqm_playground_ds.readers.dqmio import reader as reader_module
from dqm_playground_ds.readers.dqmio.baskets import BasketReader
from dqm_playground_ds.readers.dqmio.reader import resolve_threads, usable_cpus
from tests.readers.dqmio.test_reader import _assert_matches_root, _expected_frame


@pytest.fixture(autouse=True)
def _one_basket_per_task(monkeypatch):
    """The fixtures are small: one basket per task, so the pool really runs many tasks."""
    monkeypatch.setattr(reader_module, "_GROUP_BYTES", 1)


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dqmio-basket")]


def _assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns="data"), b.drop(columns="data"))
    for x, y in zip(a["data"], b["data"], strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_threads_give_roots_values(dqmio_fixture, threads):
    path, expected = dqmio_fixture("many_baskets")
    table = read_dqmio(path, include_run_level=True, threads=threads, chunk_bytes=4096)
    _assert_matches_root(table, _expected_frame(expected))
    _assert_same(table, read_dqmio(path, include_run_level=True, threads=1, chunk_bytes=4096))
    assert not _pool_threads()


def test_default_threads():
    assert resolve_threads(None) == min(4, usable_cpus())
    assert resolve_threads(3) == 3
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads must be a positive integer or None"):
            resolve_threads(bad)


def test_lean_basket_reads_equal_uprootss(dqmio_fixture):
    """Bytes and entry offsets of every free basket are uproot's own."""
    path, _ = dqmio_fixture("many_baskets")
    with DQMIOFile(path) as f:
        reader = BasketReader(str(path), f._file.file.source)
        try:
            for t in (3, 6):
                branch = f._tree(t)["Value"]
                seeks, sizes = branch.member("fBasketSeek"), branch.member("fBasketBytes")
                for b in range(branch.num_baskets - len(branch.embedded_baskets or ())):
                    data, offsets = reader.read(int(seeks[b]), int(sizes[b]))
                    basket = branch.basket(b)
                    np.testing.assert_array_equal(data, basket.data)
                    np.testing.assert_array_equal(offsets, basket.byte_offsets)
        finally:
            reader.close()


def test_error_in_a_worker_joins_the_pool(tmp_path, dqmio_fixture):
    src, _ = dqmio_fixture("many_baskets")
    with DQMIOFile(src) as f:
        branch = f._tree(3)["Value"]
        seek = int(branch.member("fBasketSeek")[1])
        nbytes = int(branch.member("fBasketBytes")[1])
    raw = bytearray(src.read_bytes())
    for i in range(seek + 120, seek + nbytes - 20, 7):
        raw[i] ^= 0x5A
    bad = tmp_path / "corrupt_basket.root"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DQMIOError, match=r"TH1Fs/Value basket 1"):
        read_dqmio(bad, threads=4, chunk_bytes=1024)
    assert not _pool_threads()


def test_basket_key_overwritten_is_named(tmp_path, dqmio_fixture):
    src, _ = dqmio_fixture("many_baskets")
    with DQMIOFile(src) as f:
        seek = int(f._tree(3)["Value"].member("fBasketSeek")[2])
    raw = bytearray(src.read_bytes())
    raw[seek : seek + 4] = (7).to_bytes(4, "big")  # fNbytes no longer the branch's size
    bad = tmp_path / "bad_key.root"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DQMIOError, match=r"TH1Fs/Value basket 2 .*basket key says 7 bytes"):
        read_dqmio(bad, threads=2)
    assert not _pool_threads()


def test_stream_closed_early_joins_the_pool(dqmio_fixture):
    path, _ = dqmio_fixture("many_baskets")
    stream = iter_dqmio(path, threads=3, chunk_bytes=2048)
    first = next(stream)
    assert len(first) > 0
    assert _pool_threads()  # reading ahead while the caller holds the first piece
    stream.close()
    assert not _pool_threads()


@pytest.mark.parametrize("algo", [b"ZL", b"ZS", b"L4"])
def test_block_decompression_equals_uproots(algo):
    """The direct single-block path (ZLIB, ZSTD) and the fallback give uproot's bytes."""
    import zlib

    import cramjam
    import uproot.compression
    import xxhash
    from uproot.source.chunk import Chunk
    from uproot.source.cursor import Cursor

    from dqm_playground_ds.readers.dqmio.baskets import BasketError, decompress

    payload = np.arange(5000, dtype=">f4").tobytes()
    if algo == b"ZL":
        block = zlib.compress(payload, 1)
    elif algo == b"ZS":
        block = bytes(cramjam.zstd.compress(payload))
    else:
        body = bytes(cramjam.lz4.compress_block(payload, store_size=False))
        block = xxhash.xxh64(body).digest() + body
    n, u = len(block), len(payload)
    head = algo + b"\x01" + bytes([n & 255, n >> 8 & 255, n >> 16, u & 255, u >> 8 & 255, u >> 16])
    raw = b"KEYBYTES" + head + block
    ours = decompress(raw, 8, len(raw) - 8, u, None)
    chunk = Chunk.wrap(None, np.frombuffer(raw, dtype=np.uint8))
    theirs = uproot.compression.decompress(chunk, Cursor(8), {}, len(raw) - 8, u)
    np.testing.assert_array_equal(ours, np.asarray(theirs.get(0, u, Cursor(0), {})))
    assert ours.tobytes() == payload
    if (
        algo == b"ZL"
    ):  # a header promising one byte more is refused (cramjam zstd pads, as in uproot)
        v = u + 1
        lying = head[:6] + bytes([v & 255, v >> 8 & 255, v >> 16])
        with pytest.raises((BasketError, cramjam.DecompressionError)):
            decompress(b"KEYBYTES" + lying + block, 8, len(raw) - 8, v, None)
