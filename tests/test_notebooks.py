"""The notebooks as a reader runs them: papermill parameters reach the runs, bad ones fail
clearly before any work, and every chapter can rerun on Colab."""

import json
from pathlib import Path

import pytest

from omnigrok import REPOSITORY
from omnigrok.report.page import Parameter, notebook_parameters

papermill = pytest.importorskip("papermill", reason="the notebooks need the [book] extras")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_notebook_has_typed_parameters_and_a_colab_install_cell(path):
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    params = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    lines = [ln for ln in "".join(params[0]["source"]).splitlines() if "=" in ln]
    assert lines and all(":" in ln.split("=")[0] for ln in lines), "parameters must be typed"
    install = "".join(code[0]["source"])
    assert "google.colab" in install and f"git+{REPOSITORY}" in install


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_papermill_reads_every_parameter_as_the_tables_do(path):
    """`papermill --help-notebook` lists each parameter with the type, default and help that
    the README's tables show (its pattern once skipped `str | None` parameters silently)."""
    inspected = [
        Parameter(p["name"], p["inferred_type_name"], p["default"], p["help"])
        for p in papermill.inspect_notebook(str(path)).values()
    ]
    assert inspected == notebook_parameters(path)


def test_injected_init_scale_reaches_the_runs(tmp_path, isolated_results):
    """papermill claim3 -p init_scale 10 -p profile smoke: the chapter's MNIST runs are stored
    with α = 10 (the session's store: claim 1's smoke runs, which it needs, are shared with the
    book build), and the page says so."""
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / "claim3.ipynb"),
        str(out),
        parameters={"init_scale": 10, "profile": "smoke"},
        kernel_name="python3",
        progress_bar=False,
    )
    configs = [json.loads(p.read_text())["config"] for p in isolated_results.rglob("meta.json")]
    mnist = [c for c in configs if c["task"]["name"] == "mnist" and c["init_scale"] == 10.0]
    regimes = {(c["constraint"], c["weight_decay"] > 0) for c in mnist}
    assert {("none", True), ("fixed", False), ("init", False)} <= regimes
    # Outside the book, glue shows every figure and number as an ordinary output (what a
    # reader opening out.ipynb in Jupyter sees).
    outputs = [o for cell in cells(out) for o in cell.get("outputs", [])]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    shown = "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert len(images) >= 2, "the chapter's figures are not displayed outside the book"
    assert "`claim3_alpha` = 10" in shown and "Verdict:" in shown
    assert not any("scrapbook" in o.get("metadata", {}) for o in outputs)


def test_bad_parameter_fails_before_any_training(tmp_path, monkeypatch):
    store = tmp_path / "results"
    monkeypatch.setenv("OMNIGROK_RESULTS", str(store))
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(
            str(NOTEBOOKS / "claim3.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters={"init_scale": "ten", "profile": "smoke"},
            kernel_name="python3",
            progress_bar=False,
        )
    assert "init_scale must be a positive finite number, got 'ten'" in str(err.value)
    assert not store.exists() or not list(store.rglob("meta.json"))
