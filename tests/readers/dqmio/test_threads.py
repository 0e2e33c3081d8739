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


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("me", [None, r".*PXLayer_1$", r".*zphi.*"])
def test_entries_copied_out_of_reused_buffers_are_roots(dqmio_fixture, monkeypatch, threads, me):
    """Every basket decompressed into its thread's reused buffer (the path a selective read
    takes), so a later basket overwrites an earlier one's bytes: only what was copied survives."""
    monkeypatch.setattr(reader_module, "_SCRATCH_SHARE", 2.0)  # every basket, even whole ones
    reads = []
    real_read = BasketReader.read

    def spy(self, *args, **kwargs):
        reads.append(kwargs.get("scratch"))
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(BasketReader, "read", spy)
    path, expected = dqmio_fixture("many_baskets")
    exp = _expected_frame(expected)
    if me is not None:
        exp = exp[exp["me"].str.fullmatch(me)]
    table = read_dqmio(path, me=me, threads=threads, chunk_bytes=4096)
    _assert_matches_root(table, exp[exp["lumi"] > 0])
    assert reads.count(True) >= 2  # several baskets went through the reused buffers


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


@pytest.mark.parametrize("into", [False, True], ids=["fresh", "reused-buffer"])
@pytest.mark.parametrize("algo", [b"ZL", b"ZS", b"L4"])
def test_block_decompression_equals_uproots(algo, into):
    """The direct single-block path (ZLIB, ZSTD), into a fresh or a reused buffer, and the
    fallback give uproot's bytes; a block whose header promises another size is refused."""
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

    def framed(size: int) -> bytes:
        sizes = [n & 255, n >> 8 & 255, n >> 16, size & 255, size >> 8 & 255, size >> 16]
        return b"KEYBYTES" + algo + b"\x01" + bytes(sizes) + block

    out = np.full(u + 100, 7, dtype=np.uint8) if into else None
    raw = framed(u)
    ours = decompress(raw, 8, len(raw) - 8, u, None, out)
    chunk = Chunk.wrap(None, np.frombuffer(raw, dtype=np.uint8))
    theirs = uproot.compression.decompress(chunk, Cursor(8), {}, len(raw) - 8, u)
    np.testing.assert_array_equal(ours, np.asarray(theirs.get(0, u, Cursor(0), {})))
    assert ours.tobytes() == payload
    if into and algo != b"L4":
        assert np.shares_memory(ours, out)  # decompressed in place, not copied
    if algo != b"L4":  # a header promising one byte more, or one less, is refused
        for v in (u + 1, u - 1):
            with pytest.raises(BasketError, match=f"decompressed to {u} bytes, not {v}"):
                decompress(framed(v), 8, len(raw) - 8, v, None, out)
