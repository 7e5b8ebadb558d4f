"""One shape for tasks, models and chapters (the package's layout is part of its contract).

* A task is one module that registers a ``Task``; a model family is one module defining a
  ``Family``. ``TOY_TASK`` below is such a file, written out and imported as a reader would add
  one: nothing else in the package changes, and it trains, stores, reloads and tabulates.
* No module is over 450 lines. The modules import each other without a cycle, type-only
  imports included, and no module hides one behind an import inside a function.
* Every chapter's ``Setup`` trains nothing, and its ``run`` makes one ``run_sweep`` call.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import omnigrok
from omnigrok import chapters, profiles, registry, task
from omnigrok.chapters import base, claim3
from omnigrok.checks import PROFILES
from omnigrok.config import RunConfig, TaskSpec, run_key
from omnigrok.models import FAMILIES
from omnigrok.store import ResultStore, RunResult, log_schedule
from omnigrok.sweep import run_sweep

PACKAGE = Path(omnigrok.__file__).parent

# A whole new task and model family, as one file: y = sign of the sum of x's first k inputs,
# learned by a stacked linear model. This is the diff a reader's new task is.
TOY_TASK = '''
"""Toy: the sign of the sum of the first 3 of 8 Gaussian inputs, by a linear model."""

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from omnigrok.config import RunConfig, TaskSpec
from omnigrok.models import register as register_family
from omnigrok.models.base import Family, generators, stack
from omnigrok.registry import register
from omnigrok.task import Task, rng


@dataclass(frozen=True)
class LinearSpec:
    d_in: int = 8
    d_out: int = 2
    kind: str = field(default="toy_linear", init=False)

    @classmethod
    def from_dict(cls, d):
        return cls(d["d_in"], d["d_out"])


def init(spec, seeds, device="cpu", dtype=torch.float32):
    draw = lambda g: torch.randn(spec.d_out, spec.d_in, generator=g, dtype=torch.float64)
    return {"weight": stack(draw, generators(seeds), device, dtype)}


def forward(spec, params, x):
    return torch.matmul(x, params["weight"].transpose(1, 2))


class Reference(nn.Linear):
    def __init__(self, spec):
        super().__init__(spec.d_in, spec.d_out, bias=False)


register_family(Family("toy_linear", LinearSpec, init, forward, Reference, lambda s: "linear"))


class Toy(Task):
    name = "toy"
    models = ("toy_linear",)

    def label(self, spec):
        return "toy"

    def n_classes(self, spec):
        return 2

    def arrays(self, spec):
        x = rng(spec.data_seed, 0).standard_normal((spec.n_train + spec.n_test, 8))
        y = (x[:, :3].sum(1) > 0).astype(np.int64)
        return x[: spec.n_train], y[: spec.n_train], x[spec.n_train :], y[spec.n_train :]

    def preset(self, **overrides):
        base = dict(
            task=TaskSpec("toy", n_train=64, n_test=64),
            model=LinearSpec(),
            steps=40,
            loss="ce",
            lr=0.05,
            n_log=10,
        )
        return RunConfig(**{**base, **overrides})


TASK = register(Toy())
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy task's file, imported as the package imports its task modules."""
    path = tmp_path / "toy.py"
    path.write_text(TOY_TASK)
    spec = importlib.util.spec_from_file_location("omnigrok_toy_task", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    yield module
    registry.TASKS.pop("toy", None)
    FAMILIES.pop("toy_linear", None)


def test_a_new_task_is_one_file_and_trains_stores_and_reloads(toy, tmp_path):
    config = task.get("toy").preset()
    assert config.task == TaskSpec("toy", n_train=64, n_test=64)
    store = ResultStore(tmp_path / "store", archives=())
    configs = [config.replace(seed=s) for s in range(3)]
    first = run_sweep(configs, store=store, device="cpu", progress=False)
    assert all(r["train_acc"][-1] > 0.9 for r in first)  # a linearly separable task is learned
    again = run_sweep(configs, store=store, device="cpu", progress=False)  # loaded, not trained
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a["test_loss"], b["test_loss"])
    assert RunConfig.from_dict(config.to_dict()) == config  # the model spec round-trips
    assert store.where(config) == store.folder(run_key(config))
    from omnigrok.report.page import setup_table

    assert "| model | linear |" in setup_table(configs)


def test_a_run_must_fit_its_task(toy):
    with pytest.raises(ValueError, match="model must be one of 'toy_linear', got 'mlp'"):
        task.get("toy").preset(model=task.get("mnist").preset().model)
    with pytest.raises(ValueError, match="model must be a model spec"):
        task.get("toy").preset(model="linear")


def test_every_task_module_registers_its_task():
    modules = {p.stem for p in (PACKAGE / "tasks").glob("*.py") if p.stem != "__init__"}
    assert modules == {"imdb", "mnist", "modadd", "qm9", "teacher_student"} == set(registry.TASKS)
    for name, t in registry.TASKS.items():
        config = t.preset()
        assert config.task.name == name and t.label(config.task)


def test_every_model_module_defines_its_family():
    modules = {p.stem for p in (PACKAGE / "models").glob("*.py")} - {"__init__", "base"}
    assert modules == {"graphnet", "lstm", "mlp", "transformer"}
    assert set(FAMILIES) == {"graphnet", "lstm", "mlp", "transformer"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(
    tree: ast.Module, name: str, is_package: bool, files: set[str]
) -> tuple[set[str], list[str]]:
    """(module-level omnigrok imports of a module, its omnigrok imports inside functions).
    Imports under ``if TYPE_CHECKING:`` are for type hints only and not counted."""
    top, nested = set(), []

    def targets(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        if node.level:  # relative: resolve against this module's package
            anchor = name if is_package else name.rsplit(".", 1)[0]
            anchor = ".".join(anchor.split(".")[: len(anchor.split(".")) - node.level + 1])
            module = f"{anchor}.{node.module}" if node.module else anchor
        else:
            module = node.module or ""
        # "from omnigrok import tasks" imports the submodule omnigrok.tasks (the package's
        # __init__ is imported first in any case, as for every import): an edge to it alone.
        subs = [f"{module}.{a.name}" for a in node.names]
        return [s for s in subs if s in files] or [module]

    for node in tree.body:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import | ast.ImportFrom):
                found = [t for t in targets(sub) if t.split(".")[0] == "omnigrok"]
                inside = any(
                    isinstance(p, ast.FunctionDef | ast.AsyncFunctionDef)
                    for p in ast.walk(node)
                    if sub in ast.walk(p) and p is not sub
                )
                if inside:
                    nested += found
                else:
                    top.update(found)
    return top, nested


def _import_graph() -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph, nested = {}, {}
    for name, path in files.items():
        top, inner = _imports(
            ast.parse(path.read_text()), name, path.stem == "__init__", set(files)
        )
        graph[name] = {t for t in top if t in files and t != name}
        if inner:
            nested[name] = inner
    return graph, nested


def test_no_import_cycle():
    graph, _ = _import_graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_no_omnigrok_import_inside_a_function():
    _, nested = _import_graph()
    assert nested == {}


MAX_MODULE_LINES = 450  # a module one reader holds in mind; data tables live in _data/


def test_no_module_is_over_450_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these modules (more than {MAX_MODULE_LINES} lines): {long}"


def test_the_graph_walk_sees_what_is_imported():
    """The cycle test would pass vacuously on an empty graph: it must see known edges."""
    graph, _ = _import_graph()
    assert "omnigrok.store" in graph["omnigrok.train"]
    assert "omnigrok.registry" in graph["omnigrok.config"]
    assert "omnigrok.config" in graph["omnigrok.task"]  # at run time, not only for hints
    assert "omnigrok.chapters.claim1" in graph["omnigrok.chapters.claim2"]


def test_every_profile_table_covers_every_profile():
    for name, table in profiles.TABLES.items():
        assert set(table) == set(PROFILES), name


def _fake_results(configs: list[RunConfig]) -> list[RunResult]:
    """Curves every chapter can read: accuracy rising, losses and the norm falling."""
    out = []
    for c in configs:
        steps = log_schedule(c.steps, c.n_log)
        rise = np.linspace(0, 1, len(steps))
        metrics = {
            "train_acc": rise,
            "test_acc": rise,
            "test_acc_novel": rise,
            "train_loss": 1 - rise + 1e-3,
            "test_loss": 1 - rise + 1e-3,
            "norm": 10.0 * c.init_scale * (2 - rise),
        }
        if c.probe:  # a task's probe curve (representation: the Fourier concentration)
            metrics[c.probe] = rise
        out.append(RunResult(c, steps, metrics))
    return out


@pytest.mark.parametrize("ch", chapters.CHAPTERS, ids=lambda c: c.name)
def test_a_chapter_sets_up_without_training_and_runs_one_sweep(ch, monkeypatch):
    calls = []

    def sweep(configs, **kw):
        calls.append(len(configs))
        return _fake_results(list(configs))

    def no_training(*args, **kw):
        raise AssertionError("a chapter's Setup trained something")

    monkeypatch.setattr(base, "run_sweep", no_training)
    s = ch.setup("smoke", device="cpu")
    configs = s.configs()
    assert configs and all(isinstance(c, RunConfig) for c in configs)
    monkeypatch.setattr(base, "run_sweep", sweep)
    outcome = ch.run(s, progress=False)
    # Claim 3, the rivals, IMDb and QM9 hold a run at a landscape's w_c: the landscape comes
    # first (their prepare step), unless given.
    assert len(calls) == (2 if ch.prepare is not None else 1)
    assert (ch.prepare is not None) == (ch.name in ("claim3", "rivals", "imdb", "qm9"))
    assert ch.numbers(outcome)
    if ch.verdict is not None:
        assert ch.verdict(outcome).status
    if ch.name == "claim3":
        calls.clear()
        ch.run(claim3.Setup("smoke", device="cpu", mnist_w_c=15.0), progress=False)
        assert calls == [len(claim3.REGIMES) * 2 * 2]  # one sweep: 3 regimes x 2 tasks x 2 seeds
