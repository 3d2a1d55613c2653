"""Classroom labs: make the student release and grade submissions into a CSV.

    python tools/labs.py release [--out _build/labs]
    python tools/labs.py grade SUBMISSIONS [--out grades.csv] [--timeout 120] [--jobs 2]

The masters are MyST notebooks, labs/labN-*.md, written with nbgrader's markers and cell
metadata. This tool follows nbgrader's conventions exactly (same stub, same cell locking, same
checksums, same scoring rule), so its output goes straight into nbgrader, but it needs only
nbformat and nbclient: nbgrader itself would pull JupyterLab and ipywidgets into the course's
environment, and ipywidgets must stay out of the environment the book is built in.

release  writes an nbgrader course folder: source/<lab>/<lab>.ipynb (the master, for nbgrader)
         and release/<lab>/<lab>.ipynb (the student version: solutions replaced by
         `raise NotImplementedError()`, hidden tests removed, outputs cleared, graded and
         read-only cells locked), each with the lab's fixtures/ beside it.
grade    finds every .ipynb under SUBMISSIONS (nbgrader's submitted/<student>/<lab>/<lab>.ipynb,
         <student>/<lab>.ipynb, or <student>_<lab>.ipynb), puts the master's test and read-only
         cells back (with the hidden tests), runs the notebook in a fresh kernel and gives each
         graded cell its points if it runs without an error and without writing to stderr, else 0.
         A submission that cannot be read, crashes its kernel or hangs scores what it earned
         before that, and the next submission is graded all the same.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import copy
import csv
import hashlib
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
LABS = ROOT / "labs"
DEFAULT_RELEASE = ROOT / "_build" / "labs"

BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"  # nbgrader's stub for Python
LAB_NAME = re.compile(r"lab(\d+)", re.IGNORECASE)


# ---------------------------------------------------------------- nbgrader's cell metadata
def meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_grade(cell) -> bool:
    return bool(meta(cell).get("grade", False))


def is_solution(cell) -> bool:
    return bool(meta(cell).get("solution", False))


def is_locked(cell) -> bool:
    """nbgrader's rule: solution cells are never locked, graded cells always are."""
    m = meta(cell)
    if not m or is_solution(cell):
        return False
    return is_grade(cell) or bool(m.get("locked", False))


def grade_id(cell) -> str | None:
    """The id of a cell nbgrader tracks (graded, solution or read-only), else None."""
    if is_grade(cell) or is_solution(cell) or is_locked(cell):
        return meta(cell).get("grade_id")
    return None


def checksum(cell) -> str:
    """nbgrader's cell checksum (nbgrader.utils.compute_checksum), so nbgrader accepts our release."""
    digest = hashlib.md5()
    for part in (cell.source, cell.cell_type, str(is_grade(cell)), str(is_solution(cell)),
                 str(is_locked(cell)), meta(cell)["grade_id"]):
        digest.update(part.encode("utf-8"))
    if is_grade(cell):
        digest.update(str(float(meta(cell)["points"])).encode("utf-8"))
    return digest.hexdigest()


# ---------------------------------------------------------------- masters
def lab_paths(labs: Path = LABS) -> list[Path]:
    return sorted(labs.glob("lab*.md"), key=lambda p: int(LAB_NAME.match(p.stem).group(1)))


def strip_region(source: str, begin: str, end: str, stub: str | None = None) -> tuple[str, bool]:
    """Remove the lines from a `begin` marker to its `end` marker (nbgrader's rule), putting
    `stub` in their place at the marker's indentation. Returns (new source, found a region)."""
    out, inside, found = [], False, False
    for line in source.split("\n"):
        if begin in line:
            if inside:
                raise ValueError(f"nested '{begin}' markers")
            inside = found = True
            if stub is not None:
                indent = re.match(r"\s*", line).group(0)
                out.extend(indent + s for s in stub.split("\n"))
        elif end in line:
            if not inside:
                raise ValueError(f"'{end}' without '{begin}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"'{begin}' without '{end}'")
    return "\n".join(out), found


def read_master(path: Path) -> nbformat.NotebookNode:
    """The master notebook of one lab, checked against nbgrader's rules and ours."""
    notebook = jupytext.read(path)
    notebook.metadata.pop("jupytext", None)
    seen = set()
    for cell in notebook.cells:
        gid = grade_id(cell)
        where = f"{path.name}, cell {gid or cell.source[:40]!r}"
        if meta(cell) and not gid:
            raise ValueError(f"{where}: nbgrader cell without a grade_id")
        if gid and gid in seen:
            raise ValueError(f"{where}: duplicate grade_id")
        seen.add(gid)
        if is_grade(cell) and "points" not in meta(cell):
            raise ValueError(f"{where}: graded cell without points")
        if is_grade(cell) and is_solution(cell):
            raise ValueError(f"{where}: these labs keep answers and tests in separate cells")
        _, has_solution = strip_region(cell.source, BEGIN_SOLUTION, END_SOLUTION)
        _, has_hidden = strip_region(cell.source, BEGIN_HIDDEN, END_HIDDEN)
        if has_solution and not is_solution(cell):
            raise ValueError(f"{where}: a solution region outside a solution cell")
        if has_hidden and not is_grade(cell):
            raise ValueError(f"{where}: hidden tests outside a graded cell")
        if is_solution(cell) and not has_solution:
            raise ValueError(f"{where}: solution cell without ### BEGIN/END SOLUTION")
        if is_grade(cell):
            visible, _ = strip_region(cell.source, BEGIN_HIDDEN, END_HIDDEN)
            code = [ln for ln in visible.split("\n") if ln.strip() and not ln.strip().startswith("#")]
            if not code:
                raise ValueError(f"{where}: a graded cell needs visible tests too")
    return notebook


def graded_cells(master) -> dict[str, float]:
    """grade_id -> points of every graded cell, in notebook order."""
    return {meta(c)["grade_id"]: float(meta(c)["points"]) for c in master.cells if is_grade(c)}


def lab_fixtures(lab: str, labs: Path = LABS) -> list[Path]:
    """The fixture files of one lab: labs/fixtures/<lab>.* (or <lab>-anything)."""
    return sorted(p for p in (labs / "fixtures").glob(f"{lab}*") if p.is_file())


# ---------------------------------------------------------------- release
def clear_outputs(cell) -> None:
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    for key in ("collapsed", "scrolled"):
        cell.metadata.pop(key, None)


def student_version(master) -> nbformat.NotebookNode:
    """What nbgrader's generate_assignment makes of a master: lock, clear solutions and outputs,
    remove hidden tests, record checksums."""
    notebook = copy.deepcopy(master)
    for cell in notebook.cells:
        if is_solution(cell):  # LockCells: the answer cell stays, its content is the student's
            cell.metadata["deletable"] = False
        elif is_locked(cell):
            cell.metadata["deletable"] = False
            cell.metadata["editable"] = False
        if is_solution(cell):  # ClearSolutions
            cell.source, _ = strip_region(cell.source, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB)
        clear_outputs(cell)
        if is_grade(cell):  # ClearHiddenTests
            cell.source, _ = strip_region(cell.source, BEGIN_HIDDEN, END_HIDDEN)
        if grade_id(cell):  # ComputeChecksums
            cell.metadata["nbgrader"]["cell_type"] = cell.cell_type
            cell.metadata["nbgrader"]["checksum"] = checksum(cell)
    return notebook


def release(out: Path = DEFAULT_RELEASE, labs: Path = LABS) -> list[Path]:
    """Write source/ (masters) and release/ (student versions) as an nbgrader course folder."""
    written = []
    for path in lab_paths(labs):
        lab, master = path.stem, read_master(path)
        for kind, notebook in (("source", master), ("release", student_version(master))):
            folder = out / kind / lab
            if folder.exists():
                shutil.rmtree(folder)
            (folder / "fixtures").mkdir(parents=True)
            for fixture in lab_fixtures(lab, labs):
                shutil.copy2(fixture, folder / "fixtures" / fixture.name)
            nbformat.write(notebook, folder / f"{lab}.ipynb")
            written.append(folder / f"{lab}.ipynb")
    return written


# ---------------------------------------------------------------- grading
def find_submissions(root: Path, labs: list[str]) -> list[tuple[str, str | None, Path]]:
    """(student, lab or None, path) for every notebook under `root`.

    The lab comes from the file name or a parent folder (lab1..., or the lab's full name); the
    student is the first folder under `root`, or for a file directly in `root`, its name with
    the lab's name taken out (alice_lab1-bpe.ipynb -> alice).
    """
    by_number = {int(LAB_NAME.match(lab).group(1)): lab for lab in labs}
    found = []
    for path in sorted(root.rglob("*.ipynb")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue  # .ipynb_checkpoints and other hidden folders
        lab = None
        for name in (path.stem, *reversed(rel.parts[:-1])):
            match = LAB_NAME.search(name)
            if match and int(match.group(1)) in by_number:
                lab = by_number[int(match.group(1))]
                break
        if len(rel.parts) > 1:
            student = rel.parts[0]
        else:
            student = path.stem
            if lab:
                number = LAB_NAME.match(lab).group(1)
                student = re.sub(rf"{re.escape(lab)}|lab0*{number}(?!\d)", "", student, flags=re.IGNORECASE)
            student = student.strip("-_. ") or "unknown"
        found.append((student, lab, path))
    return found


def restore_locked_cells(submission, master):
    """nbgrader's autograde clean-up: clear outputs, keep the last of duplicated ids, put the
    master's graded and read-only cells (with hidden tests) in place of the submitted ones, keep
    the student's answer cells, and put back graded/read-only/answer cells that were deleted."""
    masters = {grade_id(c): c for c in master.cells if grade_id(c)}
    order = list(masters)
    cells, seen = [], set()
    for cell in reversed(submission.cells):  # the last copy of an id wins, as in nbgrader
        cell = copy.deepcopy(cell)
        clear_outputs(cell)
        gid = meta(cell).get("grade_id")
        if gid not in masters or gid in seen:
            cell.metadata.pop("nbgrader", None)  # unknown or duplicated: an ordinary cell
            cells.append(cell)
            continue
        seen.add(gid)
        source = masters[gid]
        if is_solution(source):
            answer = copy.deepcopy(source)
            answer.source = cell.source if cell.cell_type == source.cell_type else ""
            cells.append(answer)
        else:
            cells.append(copy.deepcopy(source))
    cells.reverse()
    for index, gid in enumerate(order):  # deleted cells go back after their predecessor
        if gid in seen:
            continue
        cell = copy.deepcopy(masters[gid])
        if is_solution(cell):
            cell.source, _ = strip_region(cell.source, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB)
        before = [meta(c).get("grade_id") for c in cells]
        previous = [g for g in order[:index] if g in before]
        position = before.index(previous[-1]) + 1 if previous else 0
        cells.insert(position, cell)
        seen.add(gid)
    notebook = copy.deepcopy(master)
    notebook.cells = cells
    return notebook


def run_notebook(notebook, workdir: Path, timeout: float, notebook_timeout: float) -> list[str | None]:
    """Execute every code cell in a fresh kernel; per cell None (ran cleanly) or why it failed."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    problems: list[str | None] = [None] * len(notebook.cells)
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", allow_errors=False,
        interrupt_on_timeout=True, record_timing=False,
        error_on_timeout={"ename": "Timeout", "evalue": f"the cell ran longer than {timeout:g} s",
                          "traceback": [f"Timeout: the cell ran longer than {timeout:g} s"]},
        resources={"metadata": {"path": str(workdir)}},
    )
    deadline = time.monotonic() + notebook_timeout
    code = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    try:
        with client.setup_kernel():
            for position, index in enumerate(code):
                if time.monotonic() > deadline:
                    for later in code[position:]:
                        problems[later] = f"not run: the notebook ran longer than {notebook_timeout:g} s"
                    break
                cell = notebook.cells[index]
                try:
                    client.execute_cell(cell, index)
                except CellExecutionError as error:
                    problems[index] = short_error(error)
                except DeadKernelError:
                    for later in code[position:]:
                        problems[later] = "not run: the kernel died"
                    break
                else:
                    for output in cell.get("outputs", []):
                        if output.output_type == "error":
                            problems[index] = f"{output.ename}: {output.evalue}"[:160]
                        elif output.output_type == "stream" and output.name == "stderr":
                            problems[index] = problems[index] or "wrote to stderr: " + output.text.strip()[:120]
    except Exception as error:  # the kernel did not start, or died while starting
        for index in code:
            problems[index] = problems[index] or f"not run: {type(error).__name__}: {error}"[:160]
    return problems


def short_error(error) -> str:
    name = getattr(error, "ename", type(error).__name__)
    value = str(getattr(error, "evalue", "")).strip().splitlines()
    return f"{name}: {value[0] if value else ''}"[:160].rstrip(": ")


def grade_one(student: str, lab: str | None, path: Path, labs: Path, timeout: float,
              notebook_timeout: float, executed: Path | None = None) -> dict:
    """One row of the grade report. Never raises: what went wrong goes into `status`."""
    row = {"student": student, "lab": lab or "?", "path": str(path), "tests": {}, "total": 0.0,
           "max_points": 0.0, "status": "ok", "notes": ""}
    if lab is None:
        row["status"] = "not a lab notebook (no labN in its name or folder)"
        return row
    try:
        master = read_master(labs / f"{lab}.md")
        points = graded_cells(master)
        row["tests"] = dict.fromkeys(points, 0.0)
        row["max_points"] = sum(points.values())
        try:
            submission = nbformat.read(path, as_version=4)
        except Exception as error:
            row["status"] = f"unreadable: {type(error).__name__}: {error}"[:200]
            return row
        notebook = restore_locked_cells(submission, master)
        with tempfile.TemporaryDirectory(prefix=f"grade-{lab}-") as tmp:
            workdir = Path(tmp)
            (workdir / "fixtures").mkdir()
            for fixture in lab_fixtures(lab, labs):
                shutil.copy2(fixture, workdir / "fixtures" / fixture.name)
            problems = run_notebook(notebook, workdir, timeout, notebook_timeout)
        notes = []
        for cell, problem in zip(notebook.cells, problems):
            gid = meta(cell).get("grade_id")
            if is_grade(cell):
                row["tests"][gid] = 0.0 if problem else points[gid]
            if problem:
                notes.append(f"{gid or 'cell'}: {problem}")
        row["total"] = sum(row["tests"].values())
        died = [p for p in problems if p and p.startswith("not run")]
        if died:
            row["status"] = died[0]
        row["notes"] = "; ".join(dict.fromkeys(notes))
        if executed is not None:
            target = executed / student / f"{lab}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, target)
    except Exception as error:  # a bug here must not stop the other submissions
        row["status"] = f"grader error: {type(error).__name__}: {error}"[:200]
    return row


def grade(submissions: Path, out: Path, labs: Path = LABS, timeout: float = 120,
          notebook_timeout: float = 600, jobs: int = 1, executed: Path | None = None) -> list[dict]:
    """Grade every notebook under `submissions` and write the CSV report to `out`."""
    lab_names = [p.stem for p in lab_paths(labs)]
    work = find_submissions(submissions, lab_names)
    args = [(s, lab, p, labs, timeout, notebook_timeout, executed) for s, lab, p in work]
    rows = []
    if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        # kernels running side by side share the cores; more threads than cores makes tiny
        # PyTorch models crawl while the threads wait for each other
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    if jobs > 1 and len(args) > 1:
        context = multiprocessing.get_context("spawn")  # a clean process per worker, no forked zmq
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {pool.submit(grade_one, *a): a for a in args}
            for future in concurrent.futures.as_completed(futures):
                s, lab, p, *_ = futures[future]
                try:
                    rows.append(future.result())
                except Exception as error:  # the worker process itself died
                    rows.append({"student": s, "lab": lab or "?", "path": str(p), "tests": {},
                                 "total": 0.0, "max_points": 0.0, "notes": "",
                                 "status": f"grader error: {type(error).__name__}: {error}"[:200]})
                report_progress(rows[-1], len(rows), len(args))
    else:
        for a in args:
            rows.append(grade_one(*a))
            report_progress(rows[-1], len(rows), len(args))
    rows.sort(key=lambda r: (r["student"], r["lab"], r["path"]))
    write_csv(rows, out, labs)
    return rows


def report_progress(row: dict, done: int, total: int) -> None:
    print(f"[{done}/{total}] {row['student']} {row['lab']}: {row['total']:g}/{row['max_points']:g}"
          f" ({row['status']})", flush=True)


def write_csv(rows: list[dict], out: Path, labs: Path = LABS) -> None:
    """One row per (student, lab): total, maximum, status, then the points of each test."""
    tests = []
    for path in lab_paths(labs):
        tests.extend(graded_cells(read_master(path)))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "lab", "total", "max_points", "status", *tests, "notes", "path"])
        for r in rows:
            writer.writerow([r["student"], r["lab"], f"{r['total']:g}", f"{r['max_points']:g}",
                             r["status"], *(f"{r['tests'][t]:g}" if t in r["tests"] else ""
                                            for t in tests), r["notes"], r["path"]])


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------- command line
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Student release and autograding of the labs.")
    sub = parser.add_subparsers(dest="command", required=True)
    rel = sub.add_parser("release", help="write the nbgrader course folder (source/ and release/)")
    rel.add_argument("--out", type=Path, default=DEFAULT_RELEASE)
    gra = sub.add_parser("grade", help="grade a folder of submitted notebooks into a CSV")
    gra.add_argument("submissions", type=Path)
    gra.add_argument("--out", type=Path, default=DEFAULT_RELEASE / "grades.csv")
    gra.add_argument("--timeout", type=float, default=120, help="seconds per cell (default 120)")
    gra.add_argument("--notebook-timeout", type=float, default=600,
                     help="seconds per notebook (default 600)")
    gra.add_argument("--jobs", type=int, default=1, help="notebooks graded at once (default 1)")
    gra.add_argument("--executed", type=Path, default=None,
                     help="also save each graded notebook, with its outputs, under this folder")
    for p in (rel, gra):
        p.add_argument("--labs", type=Path, default=LABS, help="folder of the masters (default labs/)")
    args = parser.parse_args(argv)

    if args.command == "release":
        written = release(args.out, args.labs)
        print(f"wrote {len(written) // 2} labs: masters in {args.out / 'source'}, "
              f"student versions in {args.out / 'release'}")
        return
    if not args.submissions.is_dir():
        sys.exit(f"{args.submissions} is not a folder of submitted notebooks")
    rows = grade(args.submissions, args.out, args.labs, args.timeout, args.notebook_timeout,
                 args.jobs, args.executed)
    print(f"graded {len(rows)} notebook(s); report: {args.out}")


if __name__ == "__main__":
    main()
