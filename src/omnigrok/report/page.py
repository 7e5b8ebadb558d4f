"""Helpers the notebooks share: the prologue (Colab link, profile banner, settings), glue; the
chapters' parameter tables in book/intro.md.

Numbers reach the prose through ``glue`` (myst-nb), never by hand. Outside a Jupyter Book build
(on Colab, say) ``glue`` shows the value instead, so every notebook runs anywhere.

A page leads with its result (the claim, the verdict, the key numbers, the headline figure); its
settings follow, folded (``prologue``, ``collapsed``).
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from omnigrok import REPOSITORY
from omnigrok.config import RunConfig
from omnigrok.models import describe
from omnigrok.report.metrics import reaching
from omnigrok.report.paper import CHAPTERS as COMPARED
from omnigrok.report.paper import comparison
from omnigrok.store import RunResult
from omnigrok.task import get as get_task

FIELD_LABELS = {
    "task.name": "task",
    "task.n_train": "training examples",
    "task.n_test": "test examples (0: all)",
    "task.p": "P (modular addition)",
    "task.train_frac": "train fraction",
    "task.messiness": "input messiness m (paper Sec. 4; 1: raw images)",
    "model": "model",
    "steps": "steps",
    "batch_size": "batch size (None: full batch)",
    "loss": "loss",
    "lr": "learning rate",
    "betas": "AdamW betas",
    "weight_decay": "weight decay γ",
    "init_scale": "init scale α",
    "constraint": "norm constraint",
    "target_norm": "target norm",
    "seed": "seed",
    "dtype": "precision",
}
# The rivals' levers (``omnigrok.rivals``), with their defaults: a row only where some run
# departs from them, so the other chapters' tables stay as they were.
LEVER_LABELS = {
    "softmax": ("cross-entropy over", "softmax"),
    "perp_grad": ("⊥Grad", False),
    "grad_filter": ("gradient filter (Grokfast)", "none"),
    "filter_alpha": ("filter EMA α", 0.98),
    "filter_lamb": ("filter amplitude λ", 2.0),
    "logit_scale": ("outputs (logits) held at RMS", None),
}


def _flat(config: RunConfig) -> dict[str, Any]:
    """The labelled fields of ``config``; of the task's, only those its task uses."""
    used = get_task(config.task.name).fields
    out = {}
    for name in FIELD_LABELS:
        if name.startswith("task."):
            if name != "task.name" and name[5:] not in used:
                continue
            out[name] = getattr(config.task, name[5:])
        elif name == "model":
            out[name] = describe(config.model)
        else:
            out[name] = getattr(config, name)
    return out


def _show(value: Any) -> str:
    # Sweep values such as 8 * sqrt(2) print to 4 significant digits, not 16.
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def setup_table(configs: Sequence[RunConfig]) -> str:
    """A markdown table of a set of runs: each field once, with every value it takes."""
    flats = [_flat(c) for c in configs]
    rows = ["| setting | value |", "|---|---|"]
    for name, label in FIELD_LABELS.items():
        values = list(dict.fromkeys(_show(f[name]) for f in flats if name in f))
        if values:
            rows.append(f"| {label} | {', '.join(values)} |")
    for name, (label, default) in LEVER_LABELS.items():
        values = list(dict.fromkeys(getattr(c, name) for c in configs))
        if values != [default]:
            rows.append(f"| {label} | {', '.join(_show(v) for v in values)} |")
    rows.append(f"| runs | {len(configs)} |")
    return "\n".join(rows)


PROFILE_BANNERS = {
    "paper": (
        "**Profile `paper`:** the paper's settings and five seeds, read from the verified "
        "archive of stored runs (`archive/paper`; `python -m omnigrok verify` recomputes a "
        "sample). Where the paper's text and its official code differ, the settings below "
        "show both and which this page used."
    ),
    "quick": (
        "**Profile `quick`:** a miniature of the paper's experiments that a 2-core CPU reruns "
        "in minutes. It departs from the paper where the settings below say; a page at the "
        "paper's own settings reads them from the paper archive."
    ),
    "archived": (
        "**Every chapter as the book shows it:** at the paper's settings (five seeds, from the "
        "verified paper archive) where that archive holds the chapter's runs, else as the CPU "
        "miniature (`quick`, from the committed quick archive); each row and figure names its "
        "profile."
    ),
    "smoke": (
        "**Profile `smoke`:** tiny runs that test the machinery; its numbers and verdicts "
        "mean nothing about the paper."
    ),
}


def profile_banner(profile: str) -> str:
    """What a page's profile is, in one paragraph (every chapter opens with it)."""
    return PROFILE_BANNERS[profile]


def show_markdown(text: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(text))


BOOK_ENV = "OMNIGROK_BOOK"  # "1" while book/build.py executes the notebooks
# Where a book build saves every glued figure as PNG and SVG (book/_figures); each page links
# them under the figure ("Figure files", Sphinx download links: a missing file fails the build).
FIGURES_ENV = "OMNIGROK_FIGURES"


def save_figure(name: str, fig: Any, folder: str | Path) -> list[Path]:
    """``fig`` as ``<folder>/<name>.png`` (150 dpi) and ``.svg``; returns the two paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.svg"]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    return paths


def glue(name: str, value: Any, display: bool = False) -> None:
    """In a book build (``$OMNIGROK_BOOK=1``, set by book/build.py): myst-nb's glue, which
    stores the value for ``{glue:md}`` / ``{glue:figure}`` in the prose. Anywhere else (papermill,
    Jupyter, Colab): show it as an ordinary output, so a notebook run outside the book shows
    every figure and number.

    Strings are glued as Markdown (``{glue:text}`` would show a string's quotes). A figure is
    closed afterwards so it is not drawn twice."""
    is_figure = hasattr(value, "savefig")
    if is_figure and os.environ.get(FIGURES_ENV):
        save_figure(name, value, os.environ[FIGURES_ENV])
    if os.environ.get(BOOK_ENV) == "1":
        from myst_nb import glue as nb_glue

        if isinstance(value, str):
            from IPython.display import Markdown

            value = Markdown(value)
        nb_glue(name, value, display=display)
    elif is_figure:
        from IPython.display import display as show

        show(value)
    else:
        from IPython.display import Markdown
        from IPython.display import display as show

        show(Markdown(f"`{name}` = {value}"))
    if is_figure:
        import matplotlib.pyplot as plt

        plt.close(value)


def glue_all(prefix: str, numbers: dict[str, Any]) -> None:
    """Glue every entry of ``numbers`` as ``<prefix>_<key>`` for ``{glue:text}`` in the prose."""
    for key, value in numbers.items():
        glue(f"{prefix}_{key}", value)


def colab_link(notebook: str) -> str:
    """A markdown link that opens the unexecuted notebook on Colab."""
    path = REPOSITORY.removeprefix("https://github.com/")
    url = f"https://colab.research.google.com/github/{path}/blob/main/notebooks/{notebook}.ipynb"
    return f"[Open this chapter in Colab]({url}) (it installs the package from {REPOSITORY})."


def collapsed(summary: str, body: str) -> str:
    """``body`` (markdown) folded under the one line ``summary``: an HTML ``<details>`` block.
    The book (MyST), Jupyter, Colab and GitHub all render it closed, with the markdown inside a
    click away; the blank lines around ``body`` let them parse it as markdown."""
    return f"<details>\n<summary>{summary}</summary>\n\n{body}\n\n</details>"


class PageSetup(Protocol):
    """What ``prologue`` reads of a page: its notebook's name and the profile of its runs
    (every chapter's ``Setup``; ``Page`` for the pages that have none)."""

    @property
    def chapter(self) -> str: ...

    @property
    def profile(self) -> str: ...


@dataclass(frozen=True)
class Page:
    """A page without a chapter ``Setup`` (dashboard, discussion, performance, official): its
    notebook's name, and the profile of the runs it reads ("": it reads none)."""

    chapter: str
    profile: str = ""


Runs = Sequence[RunConfig] | Mapping[str, Sequence[RunConfig]]


def _labelled(runs: Runs) -> dict[str, Sequence[RunConfig]]:
    # One unlabelled table, or a table per label.
    return dict(runs) if isinstance(runs, Mapping) else {"": runs}


def settings(chapter: str, runs: Runs) -> str:
    """The settings of a page's runs: the paper/code/page comparison where ``report.paper`` has
    one for ``chapter``, then a setup table of ``runs`` (one per label, if labelled)."""
    tables = _labelled(runs)
    every = list(dict.fromkeys(c for configs in tables.values() for c in configs))
    parts = [comparison(chapter, every)] if chapter in COMPARED else []
    for label, configs in tables.items():
        parts.append((f"**{label}**\n\n" if label else "") + setup_table(configs))
    return "\n\n".join(parts)


def prologue(setup: PageSetup, runs: Runs = ()) -> None:
    """Show what every page says about itself, in one output: the Colab link, the profile
    banner (when the page reads runs), and the settings of ``runs`` (``settings``) folded under
    one line, so that they follow the page's result without pushing it down."""
    parts = [colab_link(setup.chapter)]
    if setup.profile:
        parts.append(profile_banner(setup.profile))
    if runs:
        n = len({c for configs in _labelled(runs).values() for c in configs})
        what = "the paper, its code and this page; " if setup.chapter in COMPARED else ""
        parts.append(collapsed(f"Settings ({what}{n} runs)", settings(setup.chapter, runs)))
    show_markdown("\n\n".join(parts))


def seed_outcomes(
    results: Sequence[RunResult], metric: str, threshold: float, lower: bool = False
) -> str:
    """A markdown table with one row per run: what became of it, never averaged away.

    Each run either reached ``metric`` >= ``threshold`` (``lower``: <=, for a loss) (at which
    step, held by the rule of ``report.metrics``), crossed it only as the run ended (not
    confirmed: the run ended before the hold), stalled short of it (its best and final values
    say how far), or diverged (at which step)."""
    sign, short = ("≤", "above") if lower else ("≥", "below")
    lines = [
        f"| run | seed | {metric} {sign} {threshold:.3g} at step | best | final | outcome |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        c, curve = r.config, r[metric]
        oriented = -curve if lower else curve
        reached = reaching(r.steps, oriented, -threshold if lower else threshold)
        step = reached.step
        finite = curve[np.isfinite(curve)]
        best = f"{(finite.min() if lower else finite.max()):.3g}" if len(finite) else "—"
        final = f"{curve[-1]:.3g}" if np.isfinite(curve[-1]) else "NaN"
        if r.diverged_at is not None:
            outcome = f"diverged at step {r.diverged_at}"
        elif np.isfinite(step):
            outcome = "reached"
        elif np.isfinite(reached.unconfirmed):
            outcome = "crossed at the end of the run, not confirmed"
        else:
            outcome = f"stalled {short} {threshold:.3g} for all {c.steps} steps"
        at = str(reached)
        name = f"α={c.init_scale:g}, γ={c.weight_decay:g}" + (
            f", norm held ({c.constraint})" if c.constraint != "none" else ""
        )
        lines.append(f"| {name} | {c.seed} | {at} | {best} | {final} | {outcome} |")
    return "\n".join(lines)


def show_progress() -> bool:
    """Whether a notebook's training shows progress: yes in Jupyter, Colab or papermill, where a
    silent rerun of several minutes looks hung; no in a book build (``$OMNIGROK_BOOK=1``), where
    the bars and the training line would become stderr and stdout on the page."""
    return os.environ.get(BOOK_ENV) != "1"


@dataclass(frozen=True)
class Parameter:
    """One line ``name: type = default  # help`` of a notebook's ``parameters`` cell, as text."""

    name: str
    type: str
    default: str
    help: str


def notebook_parameters(notebook: Path) -> list[Parameter]:
    """The parameters of ``notebook``, read from its one cell tagged ``parameters`` with ``ast``
    (what papermill injects after and ``papermill --help-notebook`` prints)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{notebook}: needs one cell tagged 'parameters', found {len(tagged)}")
    source = "".join(tagged[0]["source"])
    lines = source.splitlines()
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            name = ast.unparse(node.targets[0])
            raise ValueError(f"{notebook}: parameter {name} needs a type (`{name}: type = ...`)")
        if not isinstance(node, ast.AnnAssign) or node.value is None:
            continue  # imports and comments: not parameters
        # The help is the comment after the value, on the line where the statement ends.
        last = lines[(node.end_lineno or node.lineno) - 1]
        rest = last[node.end_col_offset :].strip() if node.end_col_offset is not None else ""
        found.append(
            Parameter(
                name=ast.unparse(node.target),
                type=ast.unparse(node.annotation),
                default=ast.get_source_segment(source, node.value) or ast.unparse(node.value),
                help=rest.removeprefix("#").strip(),
            )
        )
    return found


def _cell(text: str) -> str:
    # A bare | would end the table cell ("smoke | quick | paper").
    return text.replace("|", "\\|")


def parameters_table(notebook: Path) -> str:
    """A markdown table of ``notebook``'s parameters: parameter | type | default | meaning."""
    rows = ["| parameter | type | default | meaning |", "|---|---|---|---|"]
    for p in notebook_parameters(notebook):
        rows.append(f"| `{p.name}` | `{_cell(p.type)}` | `{_cell(p.default)}` | {_cell(p.help)} |")
    return "\n".join(rows)


PARAMETERS_BEGIN = (
    "<!-- chapter parameters: generated by omnigrok.report.page.parameters_section -->"
)
PARAMETERS_END = "<!-- end of chapter parameters -->"


def chapter_title(notebook: Path) -> str:
    """The first heading of a notebook (its chapter title), else its file name."""
    for cell in json.loads(notebook.read_text())["cells"]:
        for line in "".join(cell["source"]).splitlines():
            if cell["cell_type"] == "markdown" and line.startswith("# "):
                return line[2:].strip()
    return notebook.stem


def parameters_section(notebooks: Path) -> str:
    """Every notebook's title and parameters table, between the markers book/intro.md encloses
    it in (tests/test_hygiene.py checks it against this)."""
    parts = [PARAMETERS_BEGIN]
    for notebook in sorted(Path(notebooks).glob("*.ipynb")):
        name = f"notebooks/{notebook.name}"
        parts.append(f"**{chapter_title(notebook)}** (`{name}`)\n\n{parameters_table(notebook)}")
    parts.append(PARAMETERS_END)
    return "\n\n".join(parts)


def update_parameters_section(document: Path, notebooks: Path) -> bool:
    """Replace the generated section in ``document`` with a fresh one; True if it changed."""
    text = Path(document).read_text()
    begin, end = text.find(PARAMETERS_BEGIN), text.find(PARAMETERS_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{document}: no '{PARAMETERS_BEGIN}' ... '{PARAMETERS_END}' section")
    new = text[:begin] + parameters_section(notebooks) + text[end + len(PARAMETERS_END) :]
    Path(document).write_text(new)
    return new != text


if __name__ == "__main__":
    # python -m omnigrok.report.page: regenerate the parameter tables after editing a
    # parameters cell.
    from omnigrok.store import REPO

    for doc in (REPO / "book" / "intro.md",):
        changed = update_parameters_section(doc, REPO / "notebooks")
        print(f"{doc}: {'updated' if changed else 'up to date'}")
