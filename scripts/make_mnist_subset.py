"""Derive the MNIST subset embedded in the package, with its licence notice.

Writes ``src/omnigrok/_data/mnist_subset.npz`` (the first 1000 training images and all 10,000
test images, as Omnigrok's MNIST experiments use) and ``src/omnigrok/_data/MNIST_LICENSE.md``
from a folder holding the four official MNIST IDX files, checked against their md5s first.

    python scripts/make_mnist_subset.py [MNIST_FOLDER]

MNIST_FOLDER defaults to ``../shared/data/mnist`` relative to the repository root.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "mnist"
DATA_DIR = REPO_ROOT / "src" / "omnigrok" / "_data"

# Let the script run from a plain checkout, without installing the package.
sys.path.insert(0, str(REPO_ROOT / "src"))

from omnigrok.data.mnist import (  # noqa: E402
    EMBEDDED_N_TRAIN,
    FILES,
    ensure_files,
    read_idx,
)

LICENSE_TEMPLATE = """\
# MNIST subset: attribution and licence

`mnist_subset.npz` is derived from the MNIST database of handwritten digits by
Yann LeCun, Corinna Cortes and Christopher J.C. Burges, licensed under the
Creative Commons Attribution-Share Alike 3.0 licence (CC BY-SA 3.0,
https://creativecommons.org/licenses/by-sa/3.0/). The subset is shared under the same licence.
Original: http://yann.lecun.com/exdb/mnist/

Changes: the subset keeps the first {n_train} training images and labels (`x_train`,
`y_train`) and all {n_test} test images and labels (`x_test`, `y_test`), unmodified, stored
as uint8 arrays. It was made by `scripts/make_mnist_subset.py` from the official IDX files,
whose decompressed md5s are:

| file | decompressed md5 |
|---|---|
{rows}
"""


def build_subset(source: Path) -> dict[str, np.ndarray]:
    """The arrays to embed, read from the verified IDX files in ``source``."""
    ensure_files(source, download=False)
    x_train, y_train, x_test, y_test = (read_idx(source / name) for name in FILES)
    return {
        "x_train": x_train[:EMBEDDED_N_TRAIN].astype(np.uint8),
        "y_train": y_train[:EMBEDDED_N_TRAIN].astype(np.uint8),
        "x_test": x_test.astype(np.uint8),
        "y_test": y_test.astype(np.uint8),
    }


def license_text(n_train: int, n_test: int) -> str:
    """The attribution notice that must travel with the embedded subset."""
    rows = "\n".join(f"| {name} | {md5} |" for name, md5 in FILES.items())
    return LICENSE_TEMPLATE.format(n_train=n_train, n_test=n_test, rows=rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "source",
        nargs="?",
        type=Path,
        default=DEFAULT_SOURCE,
        help=f"folder with the four MNIST IDX files (default: {DEFAULT_SOURCE})",
    )
    parser.add_argument(
        "--out", type=Path, default=DATA_DIR, help=f"output folder (default: {DATA_DIR})"
    )
    args = parser.parse_args(argv)

    arrays = build_subset(args.source)
    args.out.mkdir(parents=True, exist_ok=True)
    npz_path = args.out / "mnist_subset.npz"
    np.savez_compressed(npz_path, **arrays)
    license_path = args.out / "MNIST_LICENSE.md"
    license_path.write_text(license_text(len(arrays["y_train"]), len(arrays["y_test"])))
    print(f"wrote {npz_path} ({npz_path.stat().st_size} bytes) and {license_path}")


if __name__ == "__main__":
    main()
