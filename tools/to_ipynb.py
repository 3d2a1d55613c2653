"""Convert MyST-notebook lessons/labs to .ipynb files in one folder (for nbval and downloads).

    python tools/to_ipynb.py OUTDIR lessons/*.md labs/*.md
    python tools/to_ipynb.py --student OUTDIR lessons/*.md   # without the exercise solutions

The plain conversion keeps every cell (nbval runs these). `--student` drops everything from a
`{solution-start}` directive to its `{solution-end}`, the way the student edition of the site
does (the site build calls `convert` below for its notebooks/ downloads).
"""
import re
import sys
from pathlib import Path

import jupytext

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


def convert(source: Path, student: bool = False):
    """The notebook of one MyST lesson, optionally without its solutions."""
    notebook = jupytext.read(source)
    return strip_solutions(notebook) if student else notebook


def main() -> None:
    args = sys.argv[1:]
    student = "--student" in args
    args = [a for a in args if a != "--student"]
    if len(args) < 2:
        raise SystemExit(__doc__)
    out = Path(args[0])
    out.mkdir(parents=True, exist_ok=True)
    for name in args[1:]:
        source = Path(name)
        notebook = convert(source, student=student)
        jupytext.write(notebook, out / source.with_suffix(".ipynb").name, fmt="ipynb")
    print(f"converted {len(args) - 1} notebook(s) into {out}")


if __name__ == "__main__":
    main()
