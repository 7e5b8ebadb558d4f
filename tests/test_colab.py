"""A chapter notebook run the way Colab runs it (issue 12): a fresh virtualenv holding only
what Colab's runtime brings that matters here (torch, and ipykernel + nbclient as its kernel),
the notebook's own install cell pointed at this checkout, and nothing else installed.

The install cell's text is the notebook's, with one substitution: the repository URL becomes
a ``git+file://`` URL of a temporary clone of this checkout at HEAD, tagged with the release
the cell pins, so the pinned ref resolves as it would on GitHub. The cell only installs when
``google.colab`` is imported; a cell run before it puts a stand-in module there, as Colab's
runtime has the real one. ``USE_DRIVE`` stays off.

Python 3.11, not 3.12 (Colab's): the only torch 2.13.0 for 3.12 the registries offer is PyPI's
CUDA build, which depends on the nvidia-*-cu13 wheels (several GB, some not resolvable from
here); the CPU wheel that pip finds on local disk (its ``find-links``) is for 3.11 only. Every
other package comes from the registries as on Colab; nothing is cached between runs: the
virtualenv, the clone, the pip cache and the results store are new each time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

import omnigrok
from omnigrok.report.verdict import STATUSES

pytestmark = pytest.mark.colab

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "python3.11"
TORCH = "torch==2.13.0"  # the local CPU wheel; an unpinned torch pulls a multi-GB CUDA build
COLAB_MARKER = (
    "import sys, types\n"
    "# Colab's runtime has google.colab imported; the install cell installs only then.\n"
    'sys.modules["google.colab"] = types.ModuleType("google.colab")'
)
WHERE_FROM = "import sys, omnigrok\nprint(sys.prefix)\nprint(omnigrok.__file__)"

# Runs in the fresh virtualenv: nbclient executes the notebook in that virtualenv's kernel.
EXECUTE = textwrap.dedent(
    """
    import sys

    import nbclient
    import nbformat

    source, target, workdir = sys.argv[1:]
    notebook = nbformat.read(source, as_version=4)
    client = nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=600, resources={"metadata": {"path": workdir}}
    )
    try:
        client.execute()
    finally:
        nbformat.write(notebook, target)
    """
)


def _run(args: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args[:4])} failed:\n{done.stdout}\n{done.stderr}"


def _clean_env(home: Path) -> dict[str, str]:
    """This process's environment less anything that could reach this checkout or the test
    session's store (PYTHONPATH points at the worktree's src, OMNIGROK_* at the session's
    results), with a fresh HOME and no pip cache."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OMNIGROK_", "JUPYTER", "PYTHON", "VIRTUAL_ENV", "MPL"))
    }
    env.update(HOME=str(home), PIP_NO_CACHE_DIR="1", PIP_NO_INPUT="1")
    return env


def _tagged_clone(where: Path, env: dict[str, str]) -> Path:
    """A clone of this checkout's HEAD with the release tag the notebooks pin moved onto it."""
    _run(["git", "clone", "--quiet", "--no-local", str(ROOT), str(where)], env)
    tag = f"v{omnigrok.__version__}"
    _run(["git", "-C", str(where), "tag", "--force", tag, "HEAD"], env)
    return where


def _cell(source: str, tags: list[str] | None = None) -> dict:
    metadata = {"tags": tags} if tags else {}
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": metadata,
        "outputs": [],
        "source": source,
    }


def colab_notebook(path: Path, url: str, parameters: dict[str, object]) -> dict:
    """``path`` as Colab would run it: the stand-in google.colab before the install cell,
    whose repository URL becomes ``url``; ``parameters`` injected after the parameters cell
    (as papermill does); a last cell printing where the kernel found the package."""
    notebook = json.loads(path.read_text())
    cells = notebook["cells"]
    (install,) = [c for c in cells if "".join(c["source"]).startswith("# On Colab only")]
    source = "".join(install["source"])
    pinned = f"git+{omnigrok.REPOSITORY}@"
    assert source.count(pinned) == 1, "the install cell no longer pins the repository URL"
    install["source"] = source.replace(pinned, f"git+{url}@")
    cells.insert(cells.index(install), _cell(COLAB_MARKER))
    (params,) = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assignments = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    cells.insert(cells.index(params) + 1, _cell(assignments, ["injected-parameters"]))
    cells.append(_cell(WHERE_FROM))
    return notebook


@pytest.mark.skipif(shutil.which(PYTHON) is None, reason=f"{PYTHON} not found")
@pytest.mark.skipif(shutil.which("git") is None, reason="git not found")
def test_claim1_runs_as_on_colab(tmp_path: Path, shared_mnist: Path) -> None:
    env = _clean_env(tmp_path / "home")
    (tmp_path / "home").mkdir()
    venv = tmp_path / "venv"
    # --upgrade-deps: a current pip, as Colab has (3.11.7's own pip 23.2 rejects a git+file://
    # requirement with no host, which GitHub's https URL on Colab never meets).
    _run([PYTHON, "-m", "venv", "--upgrade-deps", str(venv)], env)
    python = str(venv / "bin" / "python")
    _run([python, "-m", "pip", "install", "-q", TORCH, "ipykernel", "nbclient"], env)
    # Colab's state before the install cell: the project is not there.
    gone = subprocess.run([python, "-c", "import omnigrok"], env=env, capture_output=True)
    assert gone.returncode != 0

    clone = _tagged_clone(tmp_path / "clone", env)
    notebook = colab_notebook(
        ROOT / "notebooks" / "claim1.ipynb", f"file://{clone}", {"profile": "smoke"}
    )
    source, target = tmp_path / "colab.ipynb", tmp_path / "out.ipynb"
    source.write_text(json.dumps(notebook))
    (tmp_path / "content").mkdir()  # Colab's working folder
    env.update(OMNIGROK_RESULTS=str(tmp_path / "results"), OMNIGROK_DATA=str(shared_mnist))
    script = tmp_path / "execute.py"
    script.write_text(EXECUTE)
    _run([python, str(script), str(source), str(target), str(tmp_path / "content")], env)

    cells = json.loads(target.read_text())["cells"]
    outputs = [o for cell in cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    # The package came from the clone, installed into the fresh virtualenv by the install cell.
    prefix, package = "".join(cells[-1]["outputs"][0]["text"]).split()
    assert Path(prefix) == venv and Path(package).is_relative_to(venv / "lib")
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    shown = "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert images, "the chapter's figure is not displayed"
    for number in ("claim1_mnist_w_c", "claim1_teacher_student_w_c"):
        assert f"`{number}` = " in shown, f"{number} is not shown"
    # The computed verdict leads the page (Verdict.markdown's folded status line).
    assert any(f"Verdict: {status}." in shown for status in STATUSES), "no verdict is shown"
    assert "Profile `smoke`" in shown
    assert list((tmp_path / "results").rglob("meta.json")), "the runs were not stored"
