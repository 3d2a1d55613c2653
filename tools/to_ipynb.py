"""Convert MyST-notebook lessons/labs to .ipynb files in one folder (for nbval and downloads).

    python tools/to_ipynb.py OUTDIR lessons/*.md labs/*.md
    python tools/to_ipynb.py --student OUTDIR lessons/*.md   # without the exercise solutions
    python tools/to_ipynb.py --setup OUTDIR lessons/02-attention.md   # as the site ships them

The plain conversion keeps every cell (nbval runs these). `--student` drops everything from a
`{solution-start}` directive to its `{solution-end}`, the way the student edition of the site
does. `--setup` opens each notebook with the set-up cell the site's notebooks/ have: it does
nothing in a clone of the course and elsewhere installs the course package at the published
version and fetches its data (the site build calls `convert` below for its notebooks/).

The public addresses come from _config.yml (repository: url, branch; html: baseurl), the one
place they are written; `published()` is what the site extension and the notebooks use.
"""
import re
import sys
import tomllib
from pathlib import Path

import jupytext
import yaml
from nbformat import v4

ROOT = Path(__file__).resolve().parents[1]

# A fence line opening a gated solution directive: ```{solution-start} label  or  :::{solution-end}
SOLUTION_FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{solution-(?P<kind>start|end)\}")


def strip_solutions(notebook):
    """Remove every gated solution (its markdown directives and the cells between them).

    Text before a `{solution-start}` fence and after the closing fence of a `{solution-end}`
    stays, so an exercise written in the same markdown cell is kept.
    """
    kept, inside = [], False
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            if not inside:
                kept.append(cell)
            continue
        lines, out = cell.source.splitlines(), []
        i = 0
        while i < len(lines):
            match = SOLUTION_FENCE.match(lines[i].strip())
            if match and match["kind"] == "start":
                inside = True
            elif match and match["kind"] == "end":
                # skip to the fence that closes the (empty) solution-end directive
                fence, i = match["fence"], i + 1
                while i < len(lines) and lines[i].strip() != fence:
                    i += 1
                inside = False
            elif not inside:
                out.append(lines[i])
            i += 1
        if "\n".join(out).strip():
            cell.source = "\n".join(out).strip("\n")
            kept.append(cell)
    if inside:
        raise ValueError("a {solution-start} has no matching {solution-end}")
    notebook.cells = kept
    return notebook


def published(student: bool = False) -> dict:
    """The course's public addresses from _config.yml, and the package version."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repository = config["repository"]["url"].rstrip("/")
    site = config["html"]["baseurl"].rstrip("/")
    if "github.com/" not in repository or not site.startswith("https://"):
        raise ValueError("_config.yml must give repository: url: (a GitHub address) and html: "
                         "baseurl: (the https address the site is published at)")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    launch = config.get("launch_buttons", {})
    return {
        "repository": repository,
        "branch": config["repository"].get("branch", "main"),
        "site_url": site + "/",
        # the site's branch (Colab opens notebooks from it); see .github/workflows/pages.yml
        "pages_branch": "gh-pages",
        "site_prefix": "student/" if student else "",
        "colab_url": launch.get("colab_url", ""),
        "binderhub_url": launch.get("binderhub_url", ""),
        "version": version,
        # the pages workflow publishes the wheel it built beside the site's notebooks
        "wheel": f"{site}/dist/llmscratch-{version}-py3-none-any.whl",
    }


SETUP_CELL = '''\
# Set-up. In a clone of the course this cell does nothing. Anywhere else
# (Colab, Binder, your own Jupyter) it installs the course package {version}
# with its exact pins, then fetches and verifies the course data into a
# data/ folder it can write to.
import importlib.metadata
import os
import subprocess
import sys

COURSE_VERSION = "{version}"
COURSE_SITE = "{site_url}"
COURSE_WHEEL = os.environ.get(  # LLMS_WHEEL: another copy of the wheel
    "LLMS_WHEEL",
    f"{{COURSE_SITE}}{wheel_path}")
try:
    from llmscratch import course
except ImportError:
    course = None
if course is None or not course.IN_CHECKOUT:
    try:
        installed = importlib.metadata.version("llmscratch")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed != COURSE_VERSION:
        print(f"installing llmscratch {{COURSE_VERSION}} and its pins")
        pip = [sys.executable, "-m", "pip", "install", "-q", COURSE_WHEEL]
        if subprocess.run(pip).returncode != 0:
            raise RuntimeError(
                f"could not install {{COURSE_WHEEL}}: check the internet "
                "connection and rerun this cell (pip said why above)")
        if course is not None:
            raise RuntimeError("llmscratch was upgraded: restart the kernel, "
                               "then run the notebook again from the top")
    from llmscratch import fetch
    try:
        fetch.fetch_all()
    except (fetch.FetchError, OSError) as error:
        raise RuntimeError(
            f"the course data could not be fetched: {{error}}. Check the "
            "internet connection (or set LLMS_DATA to a folder you can "
            "write to) and rerun this cell") from None
'''


def setup_cells(name: str, student: bool = False) -> list:
    """A note on where the notebook comes from, and the set-up code cell (SETUP_CELL)."""
    info = published(student)
    edition = " (student edition: write your own solutions)" if student else ""
    note = (
        f"**LLM from Scratch**{edition}: this notebook is generated from `{name}` of the "
        f"course repository ({info['repository']}); the course site ({info['site_url']}) shows "
        "it with every output. Run the set-up cell below first: in a clone of the course it "
        "does nothing; anywhere else it installs the course package and fetches its data "
        "(a few minutes the first time)."
    )
    wheel_path = info["wheel"].removeprefix(info["site_url"]).replace(info["version"],
                                                                       "{COURSE_VERSION}")
    code = v4.new_code_cell(SETUP_CELL.format(**info, wheel_path=wheel_path))
    code.metadata["tags"] = ["course-setup"]
    return [v4.new_markdown_cell(note), code]


def convert(source: Path, student: bool = False, setup: bool = False):
    """The notebook of one MyST lesson, optionally without its solutions and with the set-up
    cell that lets it run outside a clone."""
    notebook = jupytext.read(source)
    if student:
        strip_solutions(notebook)
    if setup:
        relative = source.resolve().relative_to(ROOT).as_posix()
        notebook.cells[0:0] = setup_cells(relative, student)
    return notebook


def main() -> None:
    args = sys.argv[1:]
    student, setup = "--student" in args, "--setup" in args
    args = [a for a in args if a not in ("--student", "--setup")]
    if len(args) < 2:
        raise SystemExit(__doc__)
    out = Path(args[0])
    out.mkdir(parents=True, exist_ok=True)
    for name in args[1:]:
        source = Path(name)
        notebook = convert(source, student=student, setup=setup)
        jupytext.write(notebook, out / source.with_suffix(".ipynb").name, fmt="ipynb")
    print(f"converted {len(args) - 1} notebook(s) into {out}")


if __name__ == "__main__":
    main()
