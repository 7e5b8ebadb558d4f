"""Tests for omnigrok.data.mnist: embedded subset, IDX reader, downloader, loader; offline."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

import omnigrok
from omnigrok.data import mnist
from omnigrok.data.mnist import (
    MnistDataError,
    download_file,
    ensure_files,
    load_embedded,
    load_mnist,
    read_idx,
)

# Class counts of the first 1000 training labels, from the shared folder's README.
README_COUNTS = [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]

_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float64): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` in the IDX format (big-endian sizes and data)."""
    header = bytes([0, 0, _IDX_CODES[array.dtype], array.ndim])
    sizes = struct.pack(f">{array.ndim}I", *array.shape)
    return header + sizes + array.astype(array.dtype.newbyteorder(">")).tobytes()


def tiny_images(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def file_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Name -> (size, mtime_ns) of every entry in ``folder``."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture(scope="module")
def full_mnist(shared_mnist: Path) -> tuple[np.ndarray, ...]:
    """The four full MNIST arrays read straight from the shared IDX files."""
    return tuple(read_idx(shared_mnist / name) for name in mnist.FILES)


# --- embedded subset ---------------------------------------------------------------------------


def test_embedded_subset_equals_the_full_files(full_mnist):
    x_train, y_train, x_test, y_test = load_embedded()
    full_x_train, full_y_train, full_x_test, full_y_test = full_mnist
    assert np.array_equal(x_train, full_x_train[:1000])
    assert np.array_equal(y_train, full_y_train[:1000])
    assert np.array_equal(x_test, full_x_test)
    assert np.array_equal(y_test, full_y_test)


def test_embedded_pixel_mean_matches_the_full_files(full_mnist):
    x_train = load_embedded()[0]
    expected = full_mnist[0][:1000].mean() / 255
    assert abs(x_train.mean() / 255 - expected) < 1e-3


def test_embedded_class_counts_match_readme():
    y_train = load_embedded()[1]
    assert np.bincount(y_train, minlength=10).tolist() == README_COUNTS


def test_embedded_license_travels_with_the_subset():
    text = (Path(omnigrok.__file__).parent / "_data" / "MNIST_LICENSE.md").read_text()
    assert "CC BY-SA 3.0" in text and "LeCun" in text
    assert all(digest in text for digest in mnist.FILES.values())


# --- load_mnist ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_train", [1000, 10])
def test_load_mnist_small_uses_embedded_subset(n_train, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv(mnist.DATA_ENV, str(cache))
    x_train, y_train, x_test, y_test = load_mnist(n_train)
    assert x_train.shape == (n_train, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (n_train,) and y_train.dtype == np.int64
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.int64
    assert not cache.exists()


def test_load_mnist_beyond_embedded_reads_shared_folder_without_writing(shared_mnist, full_mnist):
    assert Path(os.environ[mnist.DATA_ENV]) == shared_mnist
    before = file_state(shared_mnist)
    x_train, y_train, x_test, y_test = load_mnist(2000)
    assert file_state(shared_mnist) == before
    assert x_train.shape == (2000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (2000,) and y_train.dtype == np.int64
    assert np.array_equal(x_train, full_mnist[0][:2000])
    assert np.array_equal(y_test, full_mnist[3])


@pytest.mark.parametrize("n_train", [0, -5, 60001, 2.5, "100", None, True])
def test_load_mnist_rejects_bad_n_train(n_train):
    with pytest.raises(ValueError, match="n_train"):
        load_mnist(n_train)


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(mnist.DATA_ENV, str(tmp_path))
    assert mnist.cache_dir() == tmp_path
    monkeypatch.delenv(mnist.DATA_ENV)
    assert mnist.cache_dir() == Path.home() / ".cache" / "omnigrok" / "mnist"


# --- read_idx ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float64])
def test_read_idx_round_trip(tmp_path, compress, dtype):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(dtype)
    data = idx_bytes(array)
    path = tmp_path / "a.idx"
    path.write_bytes(gzip.compress(data) if compress else data)
    result = read_idx(path)
    assert result.dtype == np.dtype(dtype) and np.array_equal(result, array)
    assert result.flags.writeable


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\x00\x08",  # shorter than the magic number
        b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00",  # non-zero first byte
        b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00",  # unknown type code
        b"\x00\x00\x08\x03" + struct.pack(">I", 1),  # header cut short
        idx_bytes(np.zeros((2, 3), np.uint8))[:-1],  # data cut short
        idx_bytes(np.zeros((2, 3), np.uint8)) + b"\x00",  # trailing bytes
        gzip.compress(idx_bytes(np.zeros((2, 3), np.uint8)))[:-6],  # truncated gzip
    ],
)
def test_read_idx_rejects_malformed_files(tmp_path, payload):
    path = tmp_path / "bad.idx"
    path.write_bytes(payload)
    with pytest.raises(MnistDataError, match="bad.idx"):
        read_idx(path)


# --- downloader against a loopback HTTP server ---------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        """Keep the test output free of access logs."""


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """A folder served over HTTP on 127.0.0.1; yields (folder, base URL)."""
    # A proxy configured in the environment must not intercept loopback requests.
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A short poll interval keeps shutdown() quick.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def serve(root: Path, mirror: str, name: str, data: bytes) -> None:
    (root / mirror).mkdir(exist_ok=True)
    (root / mirror / name).write_bytes(data)


def closed_port_url() -> str:
    """A loopback URL nothing listens on, so connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def dest(tmp_path) -> Path:
    folder = tmp_path / "dest"
    folder.mkdir()
    return folder


def test_download_accepts_a_good_file(http_root, dest):
    root, base = http_root
    images = tiny_images()
    raw = idx_bytes(images)
    serve(root, "a", "tiny.gz", gzip.compress(raw))
    path = download_file("tiny.gz", dest, md5(raw), mirrors=[f"{base}/a/"], timeout=5)
    assert path == dest / "tiny.gz"
    assert np.array_equal(read_idx(path), images)
    assert os.listdir(dest) == ["tiny.gz"]


def flip_pixels(raw: bytes) -> bytes:
    """Valid gzip of IDX data whose pixels differ from ``raw``'s."""
    data = bytearray(raw)
    data[-100:] = bytes(255 - b for b in data[-100:])
    return gzip.compress(bytes(data))


def flip_gzip_bytes(raw: bytes) -> bytes:
    """Gzip of ``raw`` with bytes flipped inside the compressed stream."""
    data = bytearray(gzip.compress(raw))
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(255 - b for b in data[middle : middle + 8])
    return bytes(data)


@pytest.mark.parametrize("corrupt", [flip_pixels, flip_gzip_bytes])
def test_download_rejects_a_corrupt_file_and_leaves_nothing(http_root, dest, corrupt):
    root, base = http_root
    raw = idx_bytes(tiny_images())
    serve(root, "a", "tiny.gz", corrupt(raw))
    with pytest.raises(MnistDataError, match="checksum"):
        download_file("tiny.gz", dest, md5(raw), mirrors=[f"{base}/a/"], timeout=5)
    assert os.listdir(dest) == []


def test_download_falls_back_to_the_next_mirror_after_404(http_root, dest):
    root, base = http_root
    images = tiny_images(1)
    raw = idx_bytes(images)
    (root / "empty").mkdir()
    serve(root, "b", "tiny.gz", gzip.compress(raw))
    mirrors = [f"{base}/empty/", f"{base}/b/"]
    path = download_file("tiny.gz", dest, md5(raw), mirrors=mirrors, timeout=5)
    assert np.array_equal(read_idx(path), images)
    assert os.listdir(dest) == ["tiny.gz"]


def test_download_reports_every_failed_mirror(http_root, dest):
    root, base = http_root
    (root / "empty").mkdir()
    mirrors = [f"{base}/empty/", closed_port_url()]
    with pytest.raises(MnistDataError) as excinfo:
        download_file("tiny.gz", dest, md5(b""), mirrors=mirrors, timeout=5)
    message = str(excinfo.value)
    assert "404" in message
    assert all(mirror in message for mirror in mirrors)
    assert mnist.DATA_ENV in message
    assert os.listdir(dest) == []


def test_download_refuses_a_read_only_folder(http_root, dest, monkeypatch):
    root, base = http_root
    raw = idx_bytes(tiny_images())
    serve(root, "a", "tiny.gz", gzip.compress(raw))
    # Tests may run as root, for whom chmod cannot make a folder read-only.
    monkeypatch.setattr(mnist, "_is_writable", lambda folder: False)
    with pytest.raises(MnistDataError, match="writable"):
        download_file("tiny.gz", dest, md5(raw), mirrors=[f"{base}/a/"], timeout=5)
    assert os.listdir(dest) == []


# --- ensure_files --------------------------------------------------------------------------------


def test_ensure_files_without_download_names_the_escape_hatches(tmp_path):
    with pytest.raises(MnistDataError) as excinfo:
        ensure_files(tmp_path, download=False)
    message = str(excinfo.value)
    assert mnist.DATA_ENV in message and "n_train <= 1000" in message
    assert os.listdir(tmp_path) == []


@pytest.fixture
def tiny_files(http_root, monkeypatch):
    """Make FILES/MIRRORS describe one tiny file served over loopback; yields its raw bytes."""
    root, base = http_root
    raw = idx_bytes(tiny_images())
    serve(root, "a", "tiny.gz", gzip.compress(raw))
    monkeypatch.setattr(mnist, "FILES", {"tiny.gz": md5(raw)})
    monkeypatch.setattr(mnist, "MIRRORS", (f"{base}/a/",))
    return raw


def test_ensure_files_replaces_a_corrupt_file(tiny_files, dest):
    (dest / "tiny.gz").write_bytes(b"not gzip, not idx")
    assert ensure_files(dest) == dest
    assert read_idx(dest / "tiny.gz").tobytes() == tiny_files[16:]


def test_ensure_files_leaves_a_read_only_folder_untouched(tiny_files, dest, monkeypatch):
    corrupt = b"not gzip, not idx"
    (dest / "tiny.gz").write_bytes(corrupt)
    monkeypatch.setattr(mnist, "_is_writable", lambda folder: False)
    with pytest.raises(MnistDataError, match="tiny.gz"):
        ensure_files(dest)
    assert os.listdir(dest) == ["tiny.gz"]
    assert (dest / "tiny.gz").read_bytes() == corrupt


def test_ensure_files_hashes_each_file_once(tiny_files, dest, monkeypatch):
    calls = []
    original = mnist._decompressed_md5

    def counting_md5(path: Path) -> str:
        calls.append(path)
        return original(path)

    monkeypatch.setattr(mnist, "_decompressed_md5", counting_md5)
    (dest / "tiny.gz").write_bytes(gzip.compress(tiny_files))
    ensure_files(dest, download=False)
    ensure_files(dest, download=False)
    assert calls == [dest / "tiny.gz"]
