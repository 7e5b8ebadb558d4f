"""Build the HTML book in one command: execute the chapter notebooks, then run Jupyter Book.

    python book/build.py                  # the paper's runs, read from archive/paper
    python book/build.py --profile quick  # a CPU rerun: trains (about 30 min on 2 cores)
    python book/build.py --profile quick --executor ray:auto  # its stacks on a Ray cluster

The ``paper`` profile trains nothing: every run is read from the paper archive
(``omnigrok.archive``). When the archive lacks runs a chapter reads, the build stops before
executing anything and names the command that produces them; ``--partial`` builds the
chapters the archive covers and puts a page saying what is missing in place of the rest.

Chapters are listed in book/_toc.yml; an entry ``_nb/<name>`` means: execute
``notebooks/<name>.ipynb`` with papermill (parameter ``profile``) into ``book/_nb/<name>.ipynb``.
Jupyter Book itself never executes anything (``execute_notebooks: "off"``), and it runs with
warnings as errors. Exits non-zero when a notebook fails or Sphinx warns, and before executing
anything when a tool the build needs (papermill, jupyter-book, npm for MathJax) is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from omnigrok import archive
from omnigrok.executors import EXECUTOR_ENV, EXECUTOR_HELP, resolve_executor
from omnigrok.report import chapter_title
from omnigrok.store import default_root

BOOK = Path(__file__).resolve().parent
REPO = BOOK.parent
NB_OUT = BOOK / "_nb"
MATHJAX_CACHE = BOOK / "_mathjax"
MATHJAX_SITE = BOOK / "_extra" / "mathjax"
FIGURES = BOOK / "_figures"
PROFILES = ("smoke", "quick", "paper")
# The jupyter-book beside this interpreter, so the book is built by the environment that runs
# the notebooks, not by whichever jupyter-book comes first on PATH.
JUPYTER_BOOK = Path(sys.executable).with_name("jupyter-book")
BOOK_EXTRAS = "pip install -e '.[book]'"


def toc_entries(node: object) -> Iterator[str]:
    """Yield every ``file`` and ``root`` value in a (nested) _toc.yml structure, in order."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("root", "file") and isinstance(value, str):
                yield value
            else:
                yield from toc_entries(value)
    elif isinstance(node, list):
        for item in node:
            yield from toc_entries(item)


def chapter_names(toc: Path = BOOK / "_toc.yml") -> list[str]:
    """Names of the notebooks the toc asks for: ``_nb/claim1`` gives ``claim1``."""
    # Imported here: pyyaml comes with the [book] extras, whose absence main() reports first.
    import yaml

    entries = toc_entries(yaml.safe_load(toc.read_text()))
    return [entry.removeprefix("_nb/") for entry in entries if entry.startswith("_nb/")]


def mathjax_present() -> bool:
    """Whether MathJax is already in the site folder or npm's cache, so npm is not needed."""
    es5 = MATHJAX_CACHE / "node_modules" / "mathjax" / "es5"
    return (MATHJAX_SITE / "tex-chtml.js").is_file() or (es5 / "tex-chtml.js").is_file()


def missing_prerequisites(execute: bool) -> list[str]:
    """What this build needs and this machine lacks, each with how to get it; empty: all there.

    papermill and a Python kernel only when notebooks are executed (not ``--skip-execute``);
    npm only when MathJax is in neither the site folder nor npm's cache (``ensure_mathjax``).
    main() checks before anything runs, so a missing npm is not found after every notebook ran.
    """
    missing = []
    if execute:
        needed = (("papermill", "executes the notebooks"), ("ipykernel", "their kernel"))
        for module, role in needed:
            if importlib.util.find_spec(module) is None:
                missing.append(f"{module}, {role} ({BOOK_EXTRAS})")
    if not JUPYTER_BOOK.is_file():
        missing.append(f"jupyter-book at {JUPYTER_BOOK}, builds the HTML ({BOOK_EXTRAS})")
    if not mathjax_present() and shutil.which("npm") is None:
        missing.append(
            "npm, fetches MathJax once (install Node.js, e.g. `apt-get install npm`, or put "
            f"MathJax 3's es5 folder at {MATHJAX_CACHE / 'node_modules' / 'mathjax' / 'es5'})"
        )
    return missing


def ensure_mathjax() -> None:
    """Put MathJax 3 at ``_extra/mathjax`` so equations render with no CDN (the build is offline).

    npm installs into a gitignored cache once; html_extra_path then copies it into the site.
    """
    if (MATHJAX_SITE / "tex-chtml.js").is_file():
        return
    es5 = MATHJAX_CACHE / "node_modules" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").is_file():  # missing_prerequisites() checked for npm
        npm = ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix"]
        subprocess.run([*npm, str(MATHJAX_CACHE), "mathjax@3"], check=True)
    shutil.copytree(es5, MATHJAX_SITE, dirs_exist_ok=True)


def placeholder(name: str, parts: list[str], notebooks: Path) -> None:
    """A page for chapter ``name`` whose archived runs are incomplete: what is missing and
    the command that produces it (``--partial`` builds)."""
    text = (
        f"# {chapter_title(notebooks / f'{name}.ipynb')} (not in the archive yet)\n\n"
        f"This chapter reads the paper archive's part(s) {', '.join(parts)}, which the archive "
        "does not hold completely yet, so this build shows no numbers or verdict for it. "
        "Produce the missing runs (resumable, within a time budget; a GPU is much faster for "
        "modular addition and the width study) and build again:\n\n"
        "```bash\npython -m omnigrok archive --profile paper --device auto --budget-s 540\n"
        "python -m omnigrok archive --status\n```\n\n"
        "or rebuild the chapter on a CPU with `python book/build.py --profile quick`."
    )
    cell = {"cell_type": "markdown", "id": "missing", "metadata": {}, "source": text}
    notebook = {
        "cells": [cell],
        "metadata": {"papermill": {"parameters": {"profile": "paper"}}, "omnigrok_missing": parts},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    NB_OUT.mkdir(exist_ok=True)
    (NB_OUT / f"{name}.ipynb").write_text(json.dumps(notebook, indent=1) + "\n")


def hide_parameters(notebook: Path) -> None:
    """Remove the parameters cell and papermill's injected one from the page: the reader sees
    the profile banner and setup tables instead of code."""
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if {"parameters", "injected-parameters"} & set(tags) and "remove-cell" not in tags:
            cell["metadata"]["tags"] = [*tags, "remove-cell"]
    notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def drop_colab_badge(notebook: Path) -> None:
    """Remove the "Open in Colab" badge line from the page's markdown: the book loads nothing
    from the network (the badge is a remote image) and has no launch buttons; each chapter shows
    its plain ``colab_link`` instead. The source notebooks keep the badge for GitHub readers."""
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        lines = "".join(cell["source"]).splitlines(keepends=True)
        if cell["cell_type"] != "markdown" or not any(COLAB_BADGE in ln for ln in lines):
            continue
        i = next(i for i, ln in enumerate(lines) if COLAB_BADGE in ln)
        # The blank line after the badge goes too, so the title is followed by one blank line.
        end = i + 2 if i + 1 < len(lines) and not lines[i + 1].strip() else i + 1
        cell["source"] = lines[:i] + lines[end:]
    notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def execute(names: list[str], notebooks: Path, profile: str) -> tuple[dict[str, float], list[Path]]:
    """Run each notebook through papermill; return seconds per notebook and the failed outputs.

    A failure does not stop the others (each is independent and may be long), and its partially
    executed notebook stays in book/_nb so the traceback can be read there.
    """
    # Imported here, not at the top: without papermill the build still starts, and
    # missing_prerequisites() says what to install instead of an ImportError.
    import papermill
    from papermill.exceptions import PapermillExecutionError

    NB_OUT.mkdir(exist_ok=True)
    seconds: dict[str, float] = {}
    failed: list[Path] = []
    for name in names:
        source, output = notebooks / f"{name}.ipynb", NB_OUT / f"{name}.ipynb"
        start = time.perf_counter()
        try:
            # kernel_name pins the kernel of the Python running this script, whatever kernel the
            # notebook was last saved with, so the book always runs the installed package.
            papermill.execute_notebook(
                source,
                output,
                parameters={"profile": profile},
                kernel_name="python3",
                cwd=notebooks,
                progress_bar=False,
            )
            hide_parameters(output)
            drop_colab_badge(output)
        except PapermillExecutionError as error:
            failed.append(output)
            print(f"FAILED {name}: {error.ename}: {error.evalue}; see {output}", file=sys.stderr)
        except Exception as error:  # no kernel, invalid notebook, ...: the chapter failed too
            failed.append(output)
            print(f"FAILED {name}: {error!r}; see {output}", file=sys.stderr)
        seconds[name] = round(time.perf_counter() - start, 2)
        print(f"{name:>12}: {seconds[name]:8.1f} s", flush=True)
    return seconds, failed


def executed_profile(names: list[str]) -> str | None:
    """The profile papermill recorded in the executed notebooks (None if absent or mixed)."""
    profiles = {
        json.loads((NB_OUT / f"{name}.ipynb").read_text())["metadata"]
        .get("papermill", {})
        .get("parameters", {})
        .get("profile")
        for name in names
    }
    return profiles.pop() if len(profiles) == 1 else None


def jupyter_book(names: list[str]) -> int:
    """Build the HTML with warnings as errors; ``--all`` so no warning hides in a cached page."""
    missing = [name for name in names if not (NB_OUT / f"{name}.ipynb").is_file()]
    if missing:
        print(f"not executed yet (run without --skip-execute): {missing}", file=sys.stderr)
        return 1
    ensure_mathjax()
    command = [str(JUPYTER_BOOK), "build", str(BOOK), "-W", "--keep-going", "--all"]
    status = subprocess.run(command).returncode
    if status != 0:
        print(f"jupyter-book failed (exit {status})", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build the book, write the build report; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="paper",
        help="paper: read the archive, train nothing (default); quick/smoke: train on this machine",
    )
    parser.add_argument(
        "--partial",
        action="store_true",
        help="paper: build the chapters the archive covers, mark the others (default: stop)",
    )
    parser.add_argument("--notebooks", type=Path, default=REPO / "notebooks")
    parser.add_argument(
        "--results",
        type=Path,
        help="results store (default: $OMNIGROK_RESULTS, else ~/.cache/omnigrok/results: the "
        "store papermill, the CLI and Python use too)",
    )
    parser.add_argument("--skip-execute", action="store_true", help="reuse the notebooks in _nb")
    parser.add_argument("--executor", default=None, help=EXECUTOR_HELP)
    args = parser.parse_args(argv)
    try:
        resolve_executor(args.executor)
    except ValueError as err:
        parser.error(str(err))
    lacking_tools = missing_prerequisites(execute=not args.skip_execute)
    if lacking_tools:
        print(f"cannot build the book, missing: {'; '.join(lacking_tools)}", file=sys.stderr)
        return 1

    # The kernels inherit this: one store for the book, papermill, the CLI and Python, so a
    # second build, or a chapter rerun after a build, loads the stored results.
    os.environ["OMNIGROK_RESULTS"] = str((args.results or default_root()).resolve())
    os.environ["OMNIGROK_BOOK"] = "1"  # the kernels glue values for the prose (report.glue)
    # ... and save every glued figure as PNG and SVG (book/_figures; pages link them).
    os.environ["OMNIGROK_FIGURES"] = str(FIGURES)
    if args.executor is not None:
        # ... and train their stacks where this says (every kernel joins the same cluster).
        os.environ[EXECUTOR_ENV] = args.executor
    if args.profile == "paper":
        # The kernels inherit this: a run missing from the archive is an error, never hours of
        # training by surprise.
        os.environ["OMNIGROK_TRAIN"] = "0"

    start = time.perf_counter()
    names = chapter_names()
    seconds: dict[str, float] = {}
    lacking: dict[str, list[str]] = {}
    status = 0
    if not args.skip_execute:
        shutil.rmtree(FIGURES, ignore_errors=True)  # no figure of an earlier build survives
        notebooks = args.notebooks.resolve()
        absent = [name for name in names if not (notebooks / f"{name}.ipynb").is_file()]
        if absent:
            print(f"_toc.yml lists notebooks missing from {notebooks}: {absent}", file=sys.stderr)
            return 1
        print(f"profile {args.profile}, results in {os.environ['OMNIGROK_RESULTS']}")
        if args.profile == "paper":
            lacking = archive.missing_chapters(names, "paper")
            if lacking and not args.partial:
                for name, parts in lacking.items():
                    print(f"{name}: the archive lacks runs of {', '.join(parts)}", file=sys.stderr)
                print(
                    "produce them with `python -m omnigrok archive --profile paper` (see "
                    "`--status`), or build what is there with --partial",
                    file=sys.stderr,
                )
                return 1
            for name, parts in lacking.items():
                placeholder(name, parts, notebooks)
        seconds, failed = execute([n for n in names if n not in lacking], notebooks, args.profile)
        if failed:
            print(f"{len(failed)} notebook(s) failed; not building the HTML", file=sys.stderr)
            status = 1
    if status == 0:
        status = jupyter_book(names)

    total = round(time.perf_counter() - start, 2)
    report = {
        "profile": args.profile if not args.skip_execute else executed_profile(names),
        "notebook_seconds": seconds,
        "not_in_archive": lacking,
        "total_seconds": total,
        "ok": status == 0,
    }
    (BOOK / "_build").mkdir(exist_ok=True)
    (BOOK / "_build" / "build_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'total':>12}: {total:8.1f} s")
    if status == 0:
        print(f"built {BOOK / '_build' / 'html' / 'index.html'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
