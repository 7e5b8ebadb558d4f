"""MNIST for the Omnigrok experiments: an embedded subset, a verified downloader and a loader.

Omnigrok (Liu, Michaud & Tegmark, ICLR 2023; section on MNIST, Fig. 1) trains on the first
1000 MNIST training images and tests on the 10,000 test images. That subset ships inside the
package (``_data/mnist_subset.npz``, derived by ``scripts/make_mnist_subset.py``, CC BY-SA 3.0,
see ``_data/MNIST_LICENSE.md``), so the paper's setting needs no network and no cache.

Larger training sets (``n_train > 1000``) read the four official IDX files from
:func:`cache_dir` (``$OMNIGROK_DATA``, else ``~/.cache/omnigrok/mnist``), downloading them
when missing. Every file is checked against the md5 of its *decompressed* bytes, which holds
for the official ``.gz`` files and for any re-compressed copy alike.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import shutil
import struct
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = [
    "DATA_ENV",
    "FILES",
    "MIRRORS",
    "MnistDataError",
    "cache_dir",
    "download_file",
    "ensure_files",
    "load_embedded",
    "load_mnist",
    "read_idx",
]

MnistArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

DATA_ENV = "OMNIGROK_DATA"

FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

EMBEDDED_N_TRAIN = 1000
FULL_N_TRAIN = 60000
N_TEST = 10000
IMAGE_SHAPE = (28, 28)

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
# Some mirrors refuse urllib's default agent string.
_USER_AGENT = "omnigrok-mnist"
_EMBEDDED = "mnist_subset.npz"

# IDX type codes (third magic byte) -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# (resolved path, expected md5, size, mtime_ns) of files already checked in this process, so
# each file is hashed once; size and mtime make a file replaced since then count as new.
_VERIFIED: set[tuple[str, str, int, int]] = set()


class MnistDataError(RuntimeError):
    """MNIST data is missing, corrupt or cannot be fetched; the message says what to do."""


def _offline_hint() -> str:
    return (
        f"To work offline, set {DATA_ENV} to a folder holding the four MNIST files "
        f"({', '.join(FILES)}); or use n_train <= {EMBEDDED_N_TRAIN}, which reads the subset "
        "embedded in the package and needs no download."
    )


def cache_dir() -> Path:
    """Folder holding the full MNIST files: ``$OMNIGROK_DATA`` if set, else the user cache."""
    configured = os.environ.get(DATA_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "omnigrok" / "mnist"


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw, told apart by the gzip magic bytes).

    Returns a writable array in native byte order with the shape the header declares.
    Raises :class:`MnistDataError` if the file cannot be read, is not valid gzip data, or
    its header or length do not describe an IDX array.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MnistDataError(f"cannot read IDX file {path}: {exc}") from exc
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise MnistDataError(
                f"{path} is not valid gzip data ({exc}); delete it and fetch it again."
            ) from exc
    return _parse_idx(raw, path)


def _parse_idx(raw: bytes, path: Path) -> np.ndarray:
    """Decode IDX bytes: magic ``00 00 <type> <ndim>``, ``ndim`` big-endian uint32 sizes, data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise MnistDataError(f"{path} is not an IDX file: bad magic number {raw[:4].hex()}.")
    ndim = raw[3]
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise MnistDataError(f"{path} is truncated inside its IDX header.")
    shape = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header_len + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise MnistDataError(
            f"{path} holds {len(raw)} bytes but its IDX header (shape {shape}, {dtype.name}) "
            f"needs {expected}; the file is truncated or corrupt."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    # astype copies: the result is writable and no longer pins the decompressed bytes.
    return data.astype(dtype.newbyteorder("="))


def _decompressed_md5(path: Path) -> str:
    """md5 of the file's contents after gunzip (or of the raw bytes if it is not gzip)."""
    with path.open("rb") as fh:
        is_gzip = fh.read(2) == _GZIP_MAGIC
    digest = hashlib.md5(usedforsecurity=False)
    opener = gzip.open if is_gzip else open
    with opener(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checksum_problem(path: Path, md5: str) -> str | None:
    """Why ``path`` fails its checksum, or None if its decompressed md5 is ``md5``.

    Undecodable gzip data counts as a failed checksum; an unreadable file does not (it may be
    a permission problem, not a bad file) and raises :class:`MnistDataError` instead.
    """
    try:
        actual = _decompressed_md5(path)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        return f"not valid gzip data ({exc}), expected decompressed md5 {md5}"
    except OSError as exc:
        raise MnistDataError(f"cannot read {path}: {exc}") from exc
    if actual != md5:
        return f"decompressed md5 is {actual}, expected {md5}"
    return None


def _is_writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _fetch(url: str, dest: Path, md5: str, timeout: float) -> None:
    """Download ``url`` to a temporary file next to ``dest``, verify it, then move it in place.

    Whatever goes wrong, the temporary file is removed, so neither ``dest`` nor a partial file
    is ever left behind; ``os.replace`` makes the final step atomic.
    """
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    tmp = tempfile.NamedTemporaryFile(
        dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False
    )
    tmp_path = Path(tmp.name)
    try:
        with tmp, urllib.request.urlopen(request, timeout=timeout) as response:
            shutil.copyfileobj(response, tmp, _CHUNK)
        problem = _checksum_problem(tmp_path, md5)
        if problem is not None:
            raise MnistDataError(f"checksum mismatch: {problem}; the download was removed")
        os.replace(tmp_path, dest)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


# What one mirror can fail with; URLError and HTTPError are OSErrors, ValueError is a bad URL.
_MIRROR_ERRORS = (OSError, EOFError, zlib.error, http.client.HTTPException, ValueError)


def download_file(
    name: str,
    dest_dir: Path,
    md5: str,
    mirrors: Sequence[str] = MIRRORS,
    timeout: float = 60,
) -> Path:
    """Download ``name`` into ``dest_dir`` from the first mirror that serves it intact.

    Each mirror's copy goes to a temporary file in ``dest_dir`` and is moved to
    ``dest_dir / name`` only once the md5 of its decompressed bytes equals ``md5``; a failed
    attempt (HTTP or network error, checksum mismatch) removes its temporary file and moves on
    to the next mirror. Returns the final path; raises :class:`MnistDataError` listing every
    mirror's failure if none succeeds, or if ``dest_dir`` is not writable.
    """
    dest_dir = Path(dest_dir)
    if not dest_dir.is_dir() or not _is_writable(dest_dir):
        raise MnistDataError(
            f"cannot download {name}: {dest_dir} is not a writable folder. {_offline_hint()}"
        )
    dest = dest_dir / name
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        try:
            _fetch(url, dest, md5, timeout)
        except (*_MIRROR_ERRORS, MnistDataError) as exc:
            failures.append(f"  {url}: {exc}")
        else:
            return dest
    tried = "\n".join(failures) or "  (no mirror given)"
    raise MnistDataError(
        f"could not download {name} into {dest_dir}; every mirror failed:\n{tried}\n"
        f"{_offline_hint()}"
    )


def _verified_key(path: Path, md5: str) -> tuple[str, str, int, int]:
    stat = path.stat()
    return (str(path.resolve()), md5, stat.st_size, stat.st_mtime_ns)


def _discard_corrupt(path: Path, problem: str, download: bool) -> None:
    """Remove a file that failed its checksum, unless its folder is read-only (then raise)."""
    if not _is_writable(path.parent):
        raise MnistDataError(
            f"{path} failed its checksum ({problem}) and its folder is read-only, so it was "
            f"left untouched. Replace it with a good copy, or point {DATA_ENV} at another "
            f"folder with the four files; n_train <= {EMBEDDED_N_TRAIN} needs no files at all."
        )
    path.unlink()
    if not download:
        raise MnistDataError(
            f"{path} failed its checksum ({problem}); the bad file was removed and downloading "
            f"is disabled. {_offline_hint()}"
        )


def _ensure_file(name: str, md5: str, folder: Path, download: bool) -> None:
    path = folder / name
    if path.is_file():
        if _verified_key(path, md5) in _VERIFIED:
            return
        problem = _checksum_problem(path, md5)
        if problem is None:
            _VERIFIED.add(_verified_key(path, md5))
            return
        _discard_corrupt(path, problem, download)
    elif not download:
        raise MnistDataError(
            f"MNIST file {name} is missing from {folder} and downloading is disabled. "
            f"{_offline_hint()}"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MnistDataError(f"cannot create {folder}: {exc}. {_offline_hint()}") from exc
    # MIRRORS is passed explicitly (not via the default) so it is looked up at call time.
    download_file(name, folder, md5, mirrors=MIRRORS)
    _VERIFIED.add(_verified_key(path, md5))


def ensure_files(dest_dir: Path | None = None, download: bool = True) -> Path:
    """Make sure the four MNIST files in ``dest_dir`` (default :func:`cache_dir`) are intact.

    A file already present is checked once per process against :data:`FILES`. A corrupt one is
    removed and fetched again if its folder is writable; in a read-only folder nothing is
    written and :class:`MnistDataError` names the file. Missing files are downloaded unless
    ``download`` is False. Returns the folder.
    """
    folder = Path(dest_dir) if dest_dir is not None else cache_dir()
    for name, md5 in FILES.items():
        _ensure_file(name, md5, folder, download)
    return folder


def _check_arrays(arrays: MnistArrays, n_train: int, n_test: int, source: str) -> None:
    """Raise if the arrays do not have the MNIST shapes (guards against a bad data file)."""
    expected = [(n_train, *IMAGE_SHAPE), (n_train,), (n_test, *IMAGE_SHAPE), (n_test,)]
    shapes = [a.shape for a in arrays]
    if shapes != expected:
        raise MnistDataError(f"{source} holds arrays of shapes {shapes}, expected {expected}.")


def load_embedded() -> MnistArrays:
    """The subset shipped with the package: the first 1000 training images and all 10k tests.

    Returns ``(x_train, y_train, x_test, y_test)``: uint8 images ``[n, 28, 28]`` and int64
    labels ``[n]``.
    """
    resource = resources.files("omnigrok") / "_data" / _EMBEDDED
    try:
        with resource.open("rb") as fh, np.load(fh) as data:
            arrays = tuple(data[key] for key in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise MnistDataError(
            f"the embedded MNIST subset ({resource}) is missing or unreadable ({exc}); "
            "reinstall omnigrok, or rebuild it with scripts/make_mnist_subset.py."
        ) from exc
    x_train, y_train, x_test, y_test = arrays
    result = (x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64))
    _check_arrays(result, EMBEDDED_N_TRAIN, N_TEST, "the embedded MNIST subset")
    return result


def _load_full(folder: Path) -> MnistArrays:
    """The full 60k/10k MNIST arrays from the four (already verified) files in ``folder``."""
    x_train, y_train, x_test, y_test = (read_idx(folder / name) for name in FILES)
    result = (x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64))
    _check_arrays(result, FULL_N_TRAIN, N_TEST, f"the MNIST files in {folder}")
    return result


def load_mnist(n_train: int = 1000) -> MnistArrays:
    """The first ``n_train`` MNIST training images and all 10,000 test images.

    Returns ``(x_train, y_train, x_test, y_test)``: uint8 images ``[n, 28, 28]`` and int64
    labels ``[n]``. Up to 1000 training images come from the embedded subset (no cache, no
    network); more come from the full files in :func:`cache_dir`, downloaded if missing.
    Raises ValueError for an ``n_train`` outside [1, 60000], :class:`MnistDataError` if the
    full files are needed and cannot be had.
    """
    is_int = isinstance(n_train, (int, np.integer)) and not isinstance(n_train, bool)
    if not is_int or not 1 <= n_train <= FULL_N_TRAIN:
        raise ValueError(f"n_train must be an integer in [1, {FULL_N_TRAIN}], got {n_train!r}")
    n_train = int(n_train)
    if n_train <= EMBEDDED_N_TRAIN:
        x_train, y_train, x_test, y_test = load_embedded()
    else:
        x_train, y_train, x_test, y_test = _load_full(ensure_files(cache_dir()))
    # Copies, so the result does not keep the whole training set alive.
    return x_train[:n_train].copy(), y_train[:n_train].copy(), x_test, y_test
