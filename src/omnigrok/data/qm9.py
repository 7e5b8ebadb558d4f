"""QM9 molecules for the Omnigrok graph-network experiment (paper Sec. 3.2; official ``qm9``).

The official code reads PyTorch Geometric's ``QM9`` dataset, takes its first N molecules
(``dset[:size]``, in QM9's index order, the 3,054 unconverged molecules left out), and
regresses target 1, the isotropic polarizability α in Bohr³, from each molecule's graph:
atoms (hydrogens included) with 11 features, bonds in both directions with 4.

- Node features (PyG's order): one-hot element H, C, N, O, F; atomic number; aromatic;
  hybridization sp, sp2, sp3; number of bonded hydrogens.
- Edge features: one-hot bond type single, double, triple, aromatic.

Here the features are computed with RDKit from each molecule's SMILES in QM9 (hydrogens added,
sanitized, so aromaticity and hybridization are RDKit's), and the targets are QM9's
``Polarizability_bohr3``, both as the PyPI package ``qm9pack`` ships them (MIT licence; QM9 by
Ramakrishnan et al., CC BY 4.0). The first ``EMBEDDED_MOLECULES`` molecules ship inside this
package (``_data/qm9_first3000.npz``, see ``_data/QM9_README.md``; made by
``scripts/make_qm9_subset.py``), so the paper's 100 molecules need neither network nor RDKit;
more molecules are read from ``qm9pack`` (the ``qm9`` extra).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

EMBEDDED = "qm9_first3000.npz"
EMBEDDED_SHA256 = "6f23a6e9cf239f20f46337fac9e83e3fd88f02b3ec0823968f27466229613b1b"
EMBEDDED_MOLECULES = 3000
ELEMENTS = ("H", "C", "N", "O", "F")
NODE_FEATURES = (*ELEMENTS, "atomic number", "aromatic", "sp", "sp2", "sp3", "hydrogens")
BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
TARGET = "Polarizability_bohr3"  # PyG's QM9 target index 1, α (Bohr³)
QM9PACK_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
ARRAYS = ("node_x", "node_offset", "edges", "edge_type", "edge_offset", "y", "index", "smiles")


class Qm9DataError(RuntimeError):
    """The molecules are missing, corrupt or not the expected ones; the message says why."""


@dataclass(frozen=True)
class Molecules:
    """``n`` molecules as flat arrays: atoms ``node_x`` ``[atoms, 11]`` (molecule i's atoms are
    ``node_offset[i]:node_offset[i + 1]``), directed bonds ``edges`` ``[bonds, 2]`` (source,
    target; atom numbers local to the molecule) with their ``edge_type`` (index into
    ``BOND_TYPES``), targets ``y`` (Bohr³), QM9 indices ``index`` and the ``smiles`` the
    features were computed from (kept so that anyone can recompute them)."""

    node_x: np.ndarray
    node_offset: np.ndarray
    edges: np.ndarray
    edge_type: np.ndarray
    edge_offset: np.ndarray
    y: np.ndarray
    index: np.ndarray
    smiles: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def first(self, n: int) -> Molecules:
        """The first ``n`` molecules."""
        a, e = self.node_offset[n], self.edge_offset[n]
        return Molecules(
            self.node_x[:a],
            self.node_offset[: n + 1],
            self.edges[:e],
            self.edge_type[:e],
            self.edge_offset[: n + 1],
            self.y[:n],
            self.index[:n],
            self.smiles[:n],
        )

    def padded(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The molecules ``rows`` padded to the largest of them, as the stacked graph network
        reads them: ``nodes`` ``[m, A, 11]``, ``node_mask`` ``[m, A]``, ``src``/``dst``
        ``[m, E]``, ``edge_type`` ``[m, E]`` (the bond feature is its one-hot), ``edge_mask``
        ``[m, E]``. Padding atoms and bonds are zero and masked out (a padding bond joins atom 0
        to itself)."""
        n_atoms = np.diff(self.node_offset)[rows]
        n_edges = np.diff(self.edge_offset)[rows]
        atoms, bonds = int(n_atoms.max(initial=1)), int(n_edges.max(initial=1))
        m = len(rows)
        out = {
            "nodes": np.zeros((m, atoms, len(NODE_FEATURES)), np.float32),
            "node_mask": np.zeros((m, atoms), bool),
            "src": np.zeros((m, bonds), np.int64),
            "dst": np.zeros((m, bonds), np.int64),
            "edge_type": np.zeros((m, bonds), np.int64),
            "edge_mask": np.zeros((m, bonds), bool),
        }
        for j, i in enumerate(rows):
            a0, a1 = self.node_offset[i], self.node_offset[i + 1]
            e0, e1 = self.edge_offset[i], self.edge_offset[i + 1]
            out["nodes"][j, : a1 - a0] = self.node_x[a0:a1]
            out["node_mask"][j, : a1 - a0] = True
            out["src"][j, : e1 - e0] = self.edges[e0:e1, 0]
            out["dst"][j, : e1 - e0] = self.edges[e0:e1, 1]
            out["edge_type"][j, : e1 - e0] = self.edge_type[e0:e1]
            out["edge_mask"][j, : e1 - e0] = True
        return out


def featurize(smiles: str, n_atoms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A molecule's node features ``[atoms, 11]``, directed bonds ``[bonds, 2]`` sorted as
    PyG sorts them (by source, then target) and their types, from its SMILES with hydrogens
    added. ``n_atoms``: QM9's atom count, checked (a SMILES that RDKit reads into another
    molecule is an error, not a silent mismatch). Needs RDKit (the ``qm9`` extra)."""
    try:
        from rdkit import Chem, RDLogger
    except ImportError as err:
        raise Qm9DataError(
            "featurizing QM9 molecules needs RDKit: pip install 'omnigrok[qm9]'"
        ) from err
    RDLogger.DisableLog("rdApp.*")
    parsed = Chem.MolFromSmiles(smiles)
    if parsed is None:
        raise Qm9DataError(f"RDKit cannot read the SMILES {smiles!r}")
    mol = Chem.AddHs(parsed)
    if mol.GetNumAtoms() != n_atoms:
        raise Qm9DataError(f"{smiles!r}: {mol.GetNumAtoms()} atoms with H, QM9 says {n_atoms}")
    hybrid = Chem.rdchem.HybridizationType
    x = np.zeros((n_atoms, len(NODE_FEATURES)), np.float32)
    for atom in mol.GetAtoms():
        i = atom.GetIdx()
        x[i, ELEMENTS.index(atom.GetSymbol())] = 1
        x[i, 5] = atom.GetAtomicNum()
        x[i, 6] = atom.GetIsAromatic()
        x[i, 7:10] = [atom.GetHybridization() == h for h in (hybrid.SP, hybrid.SP2, hybrid.SP3)]
        x[i, 10] = sum(n.GetAtomicNum() == 1 for n in atom.GetNeighbors())
    edges, types = [], []
    for bond in mol.GetBonds():
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        kind = BOND_TYPES.index(str(bond.GetBondType()))
        edges += [(a, b), (b, a)]
        types += [kind, kind]
    edges_arr = np.array(edges, np.int64).reshape(-1, 2)
    order = np.lexsort((edges_arr[:, 1], edges_arr[:, 0]))
    return x, edges_arr[order], np.array(types, np.int64)[order]


def _pack(rows: list[tuple[int, str, int, float]]) -> Molecules:
    """Molecules from (QM9 index, SMILES, atom count, target) rows."""
    xs, edges, types, ys, index, smiles_list = [], [], [], [], [], []
    for qm9_index, smiles, n_atoms, target in rows:
        x, e, t = featurize(smiles, n_atoms)
        xs.append(x)
        edges.append(e)
        types.append(t)
        ys.append(target)
        index.append(qm9_index)
        smiles_list.append(smiles)
    return Molecules(
        node_x=np.concatenate(xs),
        node_offset=np.concatenate([[0], np.cumsum([len(x) for x in xs])]),
        edges=np.concatenate(edges),
        edge_type=np.concatenate(types),
        edge_offset=np.concatenate([[0], np.cumsum([len(e) for e in edges])]),
        y=np.array(ys, np.float64),
        index=np.array(index, np.int64),
        smiles=np.array(smiles_list, dtype=str),
    )


def qm9pack_data() -> Path | None:
    """qm9pack's data folder, found without importing it (its ``__init__`` needs setuptools'
    ``pkg_resources``, which recent Pythons lack); None when it is not installed."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def qm9pack_rows(n: int) -> list[tuple[int, str, int, float]]:
    """The first ``n`` molecules of ``qm9pack`` (in QM9 index order) as (index, SMILES, atoms,
    polarizability) rows; a clear error without the ``qm9`` extra."""
    data = qm9pack_data()
    if data is None:
        raise Qm9DataError(
            f"{n} molecules need the QM9 package: pip install 'omnigrok[qm9]' (qm9pack, RDKit); "
            f"up to {EMBEDDED_MOLECULES} need nothing"
        )
    rows = []
    for part in QM9PACK_PARTS:
        text = (data / part).read_text(encoding="utf-8")
        for r in csv.DictReader(io.StringIO(text)):
            rows.append((int(r["Index"]), r["SMILES"], int(r["N_atoms"]), float(r[TARGET])))
        if len(rows) >= n:
            break
    rows.sort()
    if len(rows) < n:
        raise Qm9DataError(f"qm9pack holds {len(rows)} molecules, fewer than the {n} asked for")
    return rows[:n]


def from_qm9pack(n: int) -> Molecules:
    """The first ``n`` molecules, featurized from ``qm9pack`` (needs the ``qm9`` extra)."""
    return _pack(qm9pack_rows(n))


def digest(molecules: Molecules) -> str:
    """sha256 of the arrays' names, dtypes, shapes and bytes: the same for the same molecules
    however the npz was zipped (its zip entries carry timestamps)."""
    h = hashlib.sha256()
    for name in ARRAYS:
        a = np.ascontiguousarray(getattr(molecules, name))
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save(molecules: Molecules, path) -> str:
    """Write ``molecules`` as an npz (no pickles); return their ``digest``."""
    np.savez_compressed(path, **{name: getattr(molecules, name) for name in ARRAYS})
    return digest(molecules)


def load_embedded() -> Molecules:
    """The first ``EMBEDDED_MOLECULES`` molecules shipped in the package, checked against
    their ``digest``."""
    resource = resources.files("omnigrok") / "_data" / EMBEDDED
    try:
        with np.load(io.BytesIO(resource.read_bytes()), allow_pickle=False) as f:
            molecules = Molecules(**{name: f[name] for name in ARRAYS})
    except (OSError, ValueError, KeyError) as err:
        raise Qm9DataError(
            f"the embedded QM9 molecules ({resource}) are unreadable ({err})"
        ) from err
    if digest(molecules) != EMBEDDED_SHA256:
        raise Qm9DataError(
            f"the embedded QM9 molecules ({resource}) fail their sha256; reinstall omnigrok, or "
            "rebuild them with scripts/make_qm9_subset.py"
        )
    return molecules


def load_molecules(n: int) -> Molecules:
    """The first ``n`` molecules: embedded up to ``EMBEDDED_MOLECULES``, else from qm9pack
    (whose first molecules must equal the embedded ones)."""
    embedded = load_embedded()
    if n <= len(embedded):
        return embedded.first(n)
    molecules = from_qm9pack(n)
    head = molecules.first(len(embedded))
    if not (np.array_equal(head.index, embedded.index) and np.allclose(head.y, embedded.y)):
        raise Qm9DataError("qm9pack's first molecules differ from the embedded ones")
    return molecules
