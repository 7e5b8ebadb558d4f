"""Derive the QM9 molecules embedded in the package: the first 3000 molecules of QM9.

Writes ``src/omnigrok/_data/qm9_first3000.npz``: the first 3000 molecules of QM9 in index order
(the 3,054 unconverged ones absent, as in PyTorch Geometric's ``QM9``), each featurized by
``omnigrok.data.qm9.featurize`` (RDKit, from the SMILES) with its ``Polarizability_bohr3``,
read from the PyPI package ``qm9pack`` 1.0.3 (its CSV parts are checked against their md5
first). Prints the file's sha256, which goes into ``omnigrok.data.qm9.EMBEDDED_SHA256``.

    pip install qm9pack==1.0.3 rdkit==2026.9.1   # or: pip install -e '.[qm9]'
    python scripts/make_qm9_subset.py
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from omnigrok.data import qm9

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET = REPO_ROOT / "src" / "omnigrok" / "_data" / qm9.EMBEDDED
SOURCE_MD5 = {  # qm9pack 1.0.3's data files
    "qm9_part1.csv": "bf00723b300e10892ab90fd3fe2f86a7",
}


def main() -> int:
    data = qm9.qm9pack_data()
    if data is None:
        print("qm9pack is not installed: pip install qm9pack==1.0.3 rdkit==2026.9.1")
        return 1
    for name, md5 in SOURCE_MD5.items():
        got = hashlib.md5((data / name).read_bytes(), usedforsecurity=False).hexdigest()
        if got != md5:
            print(f"{name}: md5 {got}, expected {md5}; not qm9pack 1.0.3's file")
            return 1
    molecules = qm9.from_qm9pack(qm9.EMBEDDED_MOLECULES)
    digest = qm9.save(molecules, TARGET)
    print(
        f"{TARGET}: {len(molecules)} molecules (QM9 index {molecules.index[0]}.."
        f"{molecules.index[-1]}), {len(molecules.node_x)} atoms, {len(molecules.edges)} "
        f"directed bonds, sha256 {digest}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
