"""Build the HTML book in one command: execute the chapter notebooks, then run Jupyter Book.

    python book/build.py                  # from the committed archives, training nothing
    python book/build.py --profile paper  # the paper archive only (every part stored)
    python book/build.py --profile quick  # a CPU rerun: trains (hours on 2 cores)
    python book/build.py --profile quick --executor ray:auto  # its stacks on a Ray cluster

The default (``archived``) trains nothing: each chapter is read from the paper archive when
that holds every part the chapter reads, else from the quick archive (the CPU miniature), and
its page says which in its first lines (``omnigrok.archive.book_profiles``). A chapter that
neither archive holds stops the build before anything is executed, naming the command that
produces it. ``--profile paper`` reads the paper archive alone and stops likewise.

Chapters are listed in book/_toc.yml; an entry ``_nb/<name>`` means: execute
``notebooks/<name>.ipynb`` with papermill (parameter ``profile``) into ``book/_nb/<name>.ipynb``.
Jupyter Book itself never executes anything (``execute_notebooks: "off"``), and it runs with
warnings as errors. Exits non-zero when a notebook fails or Sphinx warns, and before executing
anything when a tool the build needs (papermill, jupyter-book, npm for MathJax) is missing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from omnigrok import archive, profiles
from omnigrok.chapters import CHAPTERS, dashboard
from omnigrok.executors import EXECUTOR_ENV, EXECUTOR_HELP, resolve_executor
from omnigrok.report.page import chapter_title, collapsed
from omnigrok.store import default_root

BOOK = Path(__file__).resolve().parent
REPO = BOOK.parent
NB_OUT = BOOK / "_nb"
MATHJAX_CACHE = BOOK / "_mathjax"
MATHJAX_SITE = BOOK / "_extra" / "mathjax"
FIGURES = BOOK / "_figures"
ARCHIVED = "archived"  # each chapter from the committed archives, paper where stored, else quick
PROFILES = (ARCHIVED, "paper", "quick", "smoke")
# Pages that read other chapters' outcomes: built with ``archived`` they show each row at its
# chapter's profile (omnigrok.chapters.dashboard). Pages outside CHAPTERS and these (the
# performance page) show measurements of the machine, not runs: they are built at ``paper``.
MIXED = ("dashboard", "discussion")
GENERATED = BOOK / "_generated"  # markdown the build writes for intro.md to include
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


ALL_CHAPTERS = [c.name for c in CHAPTERS]


def chapter_profiles(names: list[str], profile: str) -> dict[str, tuple[str, list[str]]]:
    """The profile of each page in ``names`` and of every chapter in ``CHAPTERS`` (the mixed
    pages read them all, the width study too), with the paper parts each lacks.

    Raises ``archive.ArchiveIncomplete`` (naming the producer command) when a chapter's runs
    are in no archive this build may read."""
    if profile != ARCHIVED:
        return {name: (profile, []) for name in [*names, *ALL_CHAPTERS]}
    shown = archive.book_profiles(ALL_CHAPTERS)
    others = {name: (ARCHIVED if name in MIXED else "paper", []) for name in names}
    return {**others, **shown}


def shown_line(name: str, profile: str, lacking: list[str]) -> str:
    """What a page shows, for its first lines: the profile, its seeds and departures."""
    if name not in profiles.CHAPTER_TABLES:
        return ""  # the mixed pages' banner says it (report.PROFILE_BANNERS["archived"])
    if profile == "paper":
        n = len(profiles.seeds("paper", name))
        return (
            f"**Shown here: the paper's settings, {n} seeds**, read from the verified paper "
            "archive (`archive/paper`)."
        )
    # The departures are folded under one line, so that the page's result stays on its first
    # screen; the title's "· <profile>" and this line say what the page is.
    departures = f"{profiles.departures(name, profile)}."
    if lacking:
        departures += (
            " The paper's runs for this chapter are not stored yet "
            f"(`{archive.producer_command('paper', lacking)}` produces them)."
        )
    shown = f"<strong>Shown here: the CPU miniature (<code>{profile}</code>)</strong>"
    return collapsed(f"{shown}, not the paper's settings: where it departs from them", departures)


def label_page(notebook: Path, name: str, profile: str, lacking: list[str]) -> None:
    """Say what the page shows right under its title, and mark a miniature's title (the
    sidebar's entry) with its profile: "· quick"."""
    line = shown_line(name, profile, lacking)
    if not line:
        return
    nb = json.loads(notebook.read_text())
    title = nb["cells"][0]
    lines = "".join(title["source"]).splitlines(keepends=True)
    if profile not in ("paper", ARCHIVED) and lines and lines[0].startswith("# "):
        lines[0] = lines[0].rstrip("\n") + f" · {profile}\n"
        title["source"] = lines
    cell = {"cell_type": "markdown", "id": "shown-profile", "metadata": {}, "source": line}
    nb["cells"].insert(1, cell)
    notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def write_profiles_table(
    names: list[str], shown: dict[str, tuple[str, list[str]]], notebooks: Path
) -> None:
    """``_generated/profiles.md``, which intro.md includes: each chapter's profile here."""
    lines = ["| chapter | shown at |", "|---|---|"]
    for name in names:
        profile = shown[name][0]
        if name in profiles.CHAPTER_TABLES:
            label = {"paper": "paper settings, 5 seeds"}.get(
                profile, f"CPU miniature (`{profile}`)"
            )
            title = chapter_title(notebooks / f"{name}.ipynb")
            lines.append(f"| {{doc}}`{title} </_nb/{name}>` | {label} |")
    GENERATED.mkdir(exist_ok=True)
    (GENERATED / "profiles.md").write_text("\n".join(lines) + "\n")


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


def execute_one(
    name: str, notebooks: Path, profile: str, lacking: list[str]
) -> tuple[str, float, str]:
    """Run one notebook through papermill at ``profile`` into book/_nb and label its page;
    return (name, seconds, "" or why it failed). A failed notebook stays in book/_nb so the
    traceback can be read there."""
    # Imported here, not at the top: without papermill the build still starts, and
    # missing_prerequisites() says what to install instead of an ImportError.
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source, output = notebooks / f"{name}.ipynb", NB_OUT / f"{name}.ipynb"
    start = time.perf_counter()
    failure = ""
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
        label_page(output, name, profile, lacking)
    except PapermillExecutionError as error:
        failure = f"{error.ename}: {error.evalue}; see {output}"
    except Exception as error:  # no kernel, invalid notebook, ...: the chapter failed too
        failure = f"{error!r}; see {output}"
    return name, round(time.perf_counter() - start, 2), failure


def execute(
    names: list[str], notebooks: Path, shown: dict[str, tuple[str, list[str]]], jobs: int = 1
) -> tuple[dict[str, float], list[Path]]:
    """Run each notebook at its profile in ``shown`` (``chapter_profiles``), ``jobs`` at a time;
    return seconds per notebook and the failed outputs. A failure does not stop the others
    (each is independent and may be long).

    Several at a time only where nothing trains (the archived and paper builds): each page then
    only reads stored runs, and its time is mostly its kernel's start and its figures."""
    NB_OUT.mkdir(exist_ok=True)
    seconds: dict[str, float] = {}
    failed: list[Path] = []
    # The pages that read every chapter start first, so no worker is left with them at the end.
    slow = (*MIXED, "performance", "rivals")
    order = sorted(names, key=lambda name: name not in slow)
    tasks = [(name, notebooks, *shown[name]) for name in order]
    if jobs > 1:
        # Processes, not threads: each papermill run drives its own kernel and event loop.
        with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
            done = list(pool.map(execute_one, *zip(*tasks, strict=True)))
    else:
        done = [execute_one(*task) for task in tasks]
    for name, secs, failure in sorted(done, key=lambda d: names.index(d[0])):
        seconds[name] = secs
        if failure:
            failed.append(NB_OUT / f"{name}.ipynb")
            print(f"FAILED {name}: {failure}", file=sys.stderr)
        print(f"{name:>16}: {secs:8.1f} s", flush=True)
    return seconds, failed


def executed_profile(names: list[str]) -> str | None:
    """The profile papermill recorded in the executed notebooks (None if absent or mixed)."""
    found = {
        json.loads((NB_OUT / f"{name}.ipynb").read_text())["metadata"]
        .get("papermill", {})
        .get("parameters", {})
        .get("profile")
        for name in names
    }
    return found.pop() if len(found) == 1 else None


def jupyter_book(names: list[str]) -> int:
    """Build the HTML with warnings as errors; ``--all`` so no warning hides in a cached page."""
    missing = [name for name in names if not (NB_OUT / f"{name}.ipynb").is_file()]
    missing += [] if (GENERATED / "profiles.md").is_file() else ["_generated/profiles.md"]
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
        default=ARCHIVED,
        help="archived: every chapter from the committed archives, at paper settings where "
        "stored, else the quick miniature; trains nothing (default). paper: the paper archive "
        "alone. quick/smoke: train on this machine",
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
    if args.profile in (ARCHIVED, "paper"):
        # The kernels inherit this: a run missing from the archives is an error, never hours of
        # training by surprise.
        os.environ["OMNIGROK_TRAIN"] = "0"

    start = time.perf_counter()
    names = chapter_names()
    notebooks = args.notebooks.resolve()
    seconds: dict[str, float] = {}
    shown: dict[str, tuple[str, list[str]]] = {}
    status = 0
    if not args.skip_execute:
        shutil.rmtree(FIGURES, ignore_errors=True)  # no figure of an earlier build survives
        absent = [name for name in names if not (notebooks / f"{name}.ipynb").is_file()]
        if absent:
            print(f"_toc.yml lists notebooks missing from {notebooks}: {absent}", file=sys.stderr)
            return 1
        print(f"profile {args.profile}, results in {os.environ['OMNIGROK_RESULTS']}")
        if args.profile == "paper":
            lacking = archive.missing_chapters(names, "paper")
            if lacking:
                for name, parts in lacking.items():
                    print(f"{name}: the archive lacks runs of {', '.join(parts)}", file=sys.stderr)
                parts = [p for p in archive.PARTS if any(p in ps for ps in lacking.values())]
                print(
                    f"produce them with `{archive.producer_command('paper', parts)}` "
                    "(see `--status`), or build from both archives without --profile",
                    file=sys.stderr,
                )
                return 1
        try:
            shown = chapter_profiles(names, args.profile)
        except archive.ArchiveIncomplete as err:
            print(f"cannot build the book: {err}", file=sys.stderr)
            return 1
        # The mixed pages (dashboard, discussion) read each chapter at this same profile.
        decided = {name: shown[name][0] for name in ALL_CHAPTERS}
        os.environ[dashboard.BOOK_PROFILES_ENV] = json.dumps(decided)
        # Read-only builds run a page per core (2 on the machines this targets); training
        # builds one page at a time, each page's sweep using the cores itself.
        jobs = min(2, os.cpu_count() or 1) if args.profile in (ARCHIVED, "paper") else 1
        seconds, failed = execute(names, notebooks, shown, jobs)
        if failed:
            print(f"{len(failed)} notebook(s) failed; not building the HTML", file=sys.stderr)
            status = 1
        write_profiles_table(names, shown, notebooks)
    if status == 0:
        status = jupyter_book(names)

    total = round(time.perf_counter() - start, 2)
    report = {
        "profile": args.profile if not args.skip_execute else executed_profile(names),
        "chapter_profiles": {name: shown[name][0] for name in names if name in shown},
        "notebook_seconds": seconds,
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
