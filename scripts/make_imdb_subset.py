"""Derive the IMDb rows embedded in the package: the first 1000 reviews of the IMDb CSV.

Writes ``src/omnigrok/_data/imdb_first1000.csv.gz``: byte for byte the header and the first
1000 data rows of ``IMDB Dataset.csv`` (the rows the official Omnigrok code reads, paper
Sec. 3.2), gzip level 9 with no timestamp so the output is the same every time. The source is
``../shared/data/imdb/imdb_first2499.csv.gz`` (see its README for provenance), checked against
its md5 first. The md5 of the result is ``omnigrok.data.imdb.EMBEDDED_MD5``.

    python scripts/make_imdb_subset.py [SOURCE_CSV_GZ]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "imdb" / "imdb_first2499.csv.gz"
TARGET = REPO_ROOT / "src" / "omnigrok" / "_data" / "imdb_first1000.csv.gz"
SOURCE_MD5 = "ffbfba305406c9a064004490d598d77a"  # of the decompressed source (its README)
ROWS = 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args(argv)
    raw = gzip.decompress(args.source.read_bytes())
    if hashlib.md5(raw, usedforsecurity=False).hexdigest() != SOURCE_MD5:
        print(
            f"{args.source}: md5 differs from {SOURCE_MD5}; not the expected file", file=sys.stderr
        )
        return 1
    # No field holds a newline (the source README), so rows are lines; CRLF kept as is.
    lines = raw.split(b"\r\n")
    subset = b"\r\n".join(lines[: ROWS + 1]) + b"\r\n"
    TARGET.write_bytes(gzip.compress(subset, compresslevel=9, mtime=0))
    print(f"{TARGET}: {ROWS} rows, md5 {hashlib.md5(subset, usedforsecurity=False).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
