"""Repository habits, enforced: ruff lint and format (one ruff version for pip and pre-commit),
notebooks committed without outputs, one repository URL and release tag everywhere."""

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import omnigrok
from omnigrok.report.page import (
    PARAMETERS_BEGIN,
    PARAMETERS_END,
    notebook_parameters,
    parameters_section,
    parameters_table,
)

yaml = pytest.importorskip("yaml", reason="pyyaml comes with the [book] extras")

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    return subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_lint_is_clean():
    result = _ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = _ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name}: a code cell has outputs"
            assert cell.get("execution_count") is None, f"{path.name}: execution counts committed"


def test_ruff_pin_matches_the_pre_commit_hook():
    """``pip install -e '.[test]'`` and pre-commit run the same ruff, so a file that one formats
    the other does not reformat."""
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    (hook,) = [r for r in hooks["repos"] if r["repo"].endswith("/ruff-pre-commit")]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["optional-dependencies"]["test"] if d.startswith("ruff")]
    assert pins == [f"ruff=={hook['rev'].removeprefix('v')}"]


def _section(text: str, heading: str) -> str:
    """The README text under ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split()[0]
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    ends = [text.find(f"\n{'#' * n} ", start) for n in range(1, len(level) + 1)]
    return text[start : min([e for e in ends if e != -1] or [len(text)])]


def test_readme_install_names_the_cpu_wheels_and_real_extras():
    readme = (ROOT / "README.md").read_text()
    front = _section(readme, "## Build the book, run the tests")
    # The README's first command builds the whole book from the archives: no flag needed.
    assert "pip install -e '.[book,test]' && python book/build.py\n" in front
    assert "python -m pytest -q" in front
    install = _section((ROOT / "book" / "running.md").read_text(), "## Install")
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in install
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = extras["optional-dependencies"]
    asked = re.findall(r"pip install -e '\.\[([\w,]+)\]'", front + install)
    assert len(asked) >= 3  # the quick start, CPU only, GPU
    for names in asked:
        assert set(names.split(",")) <= set(extras), f"README installs unknown extras [{names}]"
    # Offline machines still learn to install torch from a local wheel first.
    assert "install torch first" in front


def test_readme_is_a_front_door_with_its_chapters_table_current():
    """At most 100 lines, the two commands in its first screen, and the chapters' table as the
    archives give it (``python -m omnigrok.report.readme`` regenerates it)."""
    from omnigrok.report import readme

    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 100, f"README.md has {len(lines)} lines"
    first_screen = "\n".join(lines[:25])
    assert "python book/build.py" in first_screen and "python -m pytest -q" in first_screen
    assert "BUILD_S" not in text, "the build time is not filled in"
    begin, end = text.index(readme.BEGIN), text.index(readme.END) + len(readme.END)
    assert text[begin:end] == readme.chapters_table(), (
        "README.md's chapters table is stale: run `python -m omnigrok.report.readme`"
    )


# -- one repository URL, one release tag --------------------------------------------------------

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _colab_badge(notebook: str) -> str:
    path = omnigrok.REPOSITORY.removeprefix("https://github.com/")
    return (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{path}/blob/main/notebooks/{notebook}.ipynb)"
    )


def test_repository_url_is_the_same_everywhere():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == omnigrok.__version__
    urls = project["urls"]
    assert urls["Repository"] == urls["Homepage"] == omnigrok.REPOSITORY
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["repository-code"] == omnigrok.REPOSITORY
    assert citation["version"] == omnigrok.__version__  # one release number everywhere
    assert _colab_badge("claim1") in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_colab_badge_and_install_pin(path, monkeypatch):
    cells = json.loads(path.read_text())["cells"]
    first_markdown = next(c for c in cells if c["cell_type"] == "markdown")
    assert _colab_badge(path.stem) in "".join(first_markdown["source"]).splitlines()
    (install,) = [c for c in cells if "".join(c["source"]).startswith("# On Colab only")]
    assert "remove-cell" in install["metadata"].get("tags", [])
    # Colab installs the release this notebook belongs to, not whatever main is by then.
    pins = re.findall(r"git\+(\S+?)@v([^\"'\s]+)", "".join(install["source"]))
    assert pins == [(omnigrok.REPOSITORY, omnigrok.__version__)]
    _check_drive_option("".join(install["source"]), monkeypatch)


def _check_drive_option(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The install cell's opt-in USE_DRIVE: off by default; off Colab the cell does nothing; on
    Colab with USE_DRIVE = True it installs, mounts Drive and puts the results there."""
    inputtransformer2 = pytest.importorskip("IPython.core.inputtransformer2")
    assert source.count("USE_DRIVE = False\n") == 1
    # IPython's own translation: `%pip ...` becomes `get_ipython().run_line_magic("pip", ...)`.
    python = inputtransformer2.TransformerManager().transform_cell(source)
    results = os.environ.get("OMNIGROK_RESULTS")

    def no_ipython():
        raise AssertionError("the install cell used IPython off Colab")

    assert "google.colab" not in sys.modules
    exec(python, {"get_ipython": no_ipython})
    assert os.environ.get("OMNIGROK_RESULTS") == results, "moved the results off Colab"

    calls = []
    shell = types.SimpleNamespace(run_line_magic=lambda *args: calls.append(("magic", *args)))
    drive = types.SimpleNamespace(mount=lambda where: calls.append(("mount", where)))
    monkeypatch.setitem(sys.modules, "google.colab", types.SimpleNamespace(drive=drive))
    monkeypatch.setenv("OMNIGROK_RESULTS", "unchanged")  # restored after the test
    exec(python, {"get_ipython": lambda: shell})  # Colab, USE_DRIVE left False
    assert [c[:2] for c in calls] == [("magic", "pip")]
    assert os.environ["OMNIGROK_RESULTS"] == "unchanged"
    calls.clear()
    exec(python.replace("USE_DRIVE = False", "USE_DRIVE = True"), {"get_ipython": lambda: shell})
    assert [c[:2] for c in calls] == [("magic", "pip"), ("mount", "/content/drive")]
    assert os.environ["OMNIGROK_RESULTS"] == "/content/drive/MyDrive/omnigrok/results"


# -- the chapters' parameter tables --------------------------------------------------------------


@pytest.mark.parametrize("document", ["book/intro.md"])
def test_parameter_tables_are_the_notebooks_own(document):
    text = (ROOT / document).read_text()
    begin, end = text.index(PARAMETERS_BEGIN), text.index(PARAMETERS_END) + len(PARAMETERS_END)
    assert text[begin:end] == parameters_section(ROOT / "notebooks"), (
        f"{document}'s parameter tables are stale: run `python -m omnigrok.report.page`"
    )


def test_parameter_tables_escape_pipes_and_need_types(tmp_path):
    lines = ['profile: str = "quick"  # smoke | quick\n', "seeds = None  # untyped\n"]
    cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": lines}
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(json.dumps({"cells": [cell]}))
    with pytest.raises(ValueError, match="parameter seeds needs a type"):
        notebook_parameters(notebook)
    cell["source"] = lines[:1]
    notebook.write_text(json.dumps({"cells": [cell]}))
    assert parameters_table(notebook).splitlines()[2] == (
        '| `profile` | `str` | `"quick"` | smoke \\| quick |'
    )
