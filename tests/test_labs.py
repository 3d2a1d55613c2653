"""The labs: the student release hides the answers, and grading tells right from wrong.

Everything goes through the commands a teacher runs (`tools/labs.py release` and `grade`):

- the generated student versions hold no solution code and no hidden test, keep nbgrader's
  metadata and checksums, and carry their fixtures;
- one grading run over a folder with, for every lab, the master (full marks), the untouched
  student version (zero, and the grader finishes) and a deliberately wrong implementation from
  tests/lab_mutants/ (loses exactly the points its header names), plus a file that is not a
  notebook at all;
- a second run on a tiny made-up lab shows that a submission that kills its kernel or hangs
  costs that submission its points and nothing else.

The masters themselves also run under nbval (`make test`), where every check inside them must pass.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "labs.py"
MUTANTS = Path(__file__).resolve().parent / "lab_mutants"

spec = importlib.util.spec_from_file_location("labs_tool", TOOL)
labs_tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(labs_tool)

LAB_PATHS = labs_tool.lab_paths()
LABS = [p.stem for p in LAB_PATHS]
MASTERS = {p.stem: labs_tool.read_master(p) for p in LAB_PATHS}
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def run_tool(*args, timeout=900) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(TOOL), *map(str, args)], cwd=ROOT, text=True,
                            capture_output=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def region_lines(source: str, begin: str, end: str) -> list[str]:
    """The stripped, non-empty lines inside begin/end markers."""
    lines, inside = [], False
    for line in source.split("\n"):
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


def read_mutant(lab: str) -> tuple[str, str, list[str]]:
    """(cell source, grade_id of the answer cell it replaces, graded cells it should fail)."""
    text = (MUTANTS / f"{lab}.py").read_text(encoding="utf-8")
    replaces = re.search(r"^# replaces: (\S+)$", text, re.MULTILINE).group(1)
    loses = re.search(r"^# loses: (.+)$", text, re.MULTILINE).group(1).split(", ")
    return text, replaces, loses


# ------------------------------------------------------------------ the masters and the release
def test_seven_labs_each_worth_ten_points_with_unique_test_ids():
    assert LABS == ["lab1-bpe", "lab2-attention", "lab3-transformer-block", "lab4-training",
                    "lab5-lora", "lab6-instruction-collate", "lab7-judge-agreement"]
    ids = []
    for lab, master in MASTERS.items():
        points = labs_tool.graded_cells(master)
        assert sum(points.values()) == 10, (lab, points)
        assert len(points) >= 4, lab
        ids.extend(points)
        # each graded cell says its points in its first line, as the lab's table does
        for cell in master.cells:
            if labs_tool.is_grade(cell):
                n = labs_tool.meta(cell)["points"]
                assert cell.source.startswith(f"# {n} point"), (lab, labs_tool.meta(cell)["grade_id"])
        assert labs_tool.lab_fixtures(lab), f"{lab} has no fixture"
    assert len(ids) == len(set(ids)), "test ids must be unique across labs (they are CSV columns)"


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("labs")
    run_tool("release", "--out", out)
    return out


def test_student_versions_hide_solutions_and_hidden_tests(release):
    for lab, master in MASTERS.items():
        student_file = release / "release" / lab / f"{lab}.ipynb"
        text = student_file.read_text(encoding="utf-8")
        student = nbformat.reads(text, as_version=4)
        nbformat.validate(student)
        for marker in MARKERS:
            assert marker not in text, (lab, marker)
        # no line of a solution or of a hidden test survives, unless the same line also appears
        # in what the student is meant to see (a visible assert, the task text)
        visible = set()
        for cell in master.cells:
            src = cell.source
            src, _ = labs_tool.strip_region(src, "BEGIN SOLUTION", "END SOLUTION")
            src, _ = labs_tool.strip_region(src, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
            visible.update(line.strip() for line in src.split("\n"))
        student_lines = {line.strip() for cell in student.cells for line in cell.source.split("\n")}
        secret = [line for cell in master.cells
                  for begin, end in (("BEGIN SOLUTION", "END SOLUTION"), ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"))
                  for line in region_lines(cell.source, begin, end)]
        assert secret, lab
        leaked = [line for line in secret if line in student_lines and line not in visible]
        assert not leaked, (lab, leaked[:3])
        # the same cells in the same order; answer cells hold nbgrader's stub
        assert [labs_tool.grade_id(c) for c in student.cells] == [labs_tool.grade_id(c) for c in master.cells]
        for cell in student.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None
            if labs_tool.is_solution(cell):
                assert "raise NotImplementedError()" in cell.source and cell.metadata["deletable"] is False
            elif labs_tool.is_locked(cell):
                assert cell.metadata["editable"] is False and cell.metadata["deletable"] is False
            if labs_tool.grade_id(cell):  # nbgrader's own checksum formula, written out again
                m = cell.metadata["nbgrader"]
                digest = hashlib.md5()
                for part in (cell.source, cell.cell_type, str(m.get("grade", False)),
                             str(m.get("solution", False)), str(labs_tool.is_locked(cell)), m["grade_id"]):
                    digest.update(part.encode())
                if m.get("grade"):
                    digest.update(str(float(m["points"])).encode())
                assert m["checksum"] == digest.hexdigest() and m["cell_type"] == cell.cell_type
        for fixture in labs_tool.lab_fixtures(lab):
            assert (release / "release" / lab / "fixtures" / fixture.name).read_bytes() == fixture.read_bytes()
        assert (release / "source" / lab / f"{lab}.ipynb").exists()


@pytest.mark.skipif(not os.environ.get("LABS_NBGRADER"),
                    reason="opt-in: set LABS_NBGRADER to an nbgrader executable (kept out of .venv)")
def test_release_equals_what_nbgrader_generates(release, tmp_path):
    """With nbgrader installed elsewhere, its generate_assignment must give the same cells."""
    course = tmp_path / "course"
    shutil.copytree(release / "source", course / "source")
    (course / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.course_id = 'labs'\n")
    nbgrader = Path(os.environ["LABS_NBGRADER"])
    env = {**os.environ, "PATH": f"{nbgrader.parent}{os.pathsep}{os.environ['PATH']}"}
    for lab in LABS:
        subprocess.run([str(nbgrader), "generate_assignment", lab, "--force"], cwd=course, env=env,
                       check=True, capture_output=True)
        theirs = nbformat.read(course / "release" / lab / f"{lab}.ipynb", as_version=4)
        ours = nbformat.read(release / "release" / lab / f"{lab}.ipynb", as_version=4)
        assert [(c.source, c.metadata) for c in theirs.cells] == [(c.source, c.metadata) for c in ours.cells], lab


# ------------------------------------------------------------------ grading
def fill_in(student, master, replace: str | None = None, with_source: str = ""):
    """A submission: the student version with every answer cell completed from the master (the
    markers dropped, as a student's cell would not have them), except `replace`."""
    answers = {labs_tool.grade_id(c): c.source for c in master.cells if labs_tool.is_solution(c)}
    for cell in student.cells:
        gid = labs_tool.grade_id(cell)
        if gid == replace:
            cell.source = with_source
        elif gid in answers:
            cell.source = "\n".join(ln for ln in answers[gid].split("\n") if "SOLUTION" not in ln)
    return student


@pytest.fixture(scope="module")
def grades(release, tmp_path_factory) -> dict[tuple[str, str], dict]:
    submissions = tmp_path_factory.mktemp("submitted")
    for lab in LABS:
        student = nbformat.read(release / "release" / lab / f"{lab}.ipynb", as_version=4)
        for who in ("master", "student", "mutant"):
            (submissions / who).mkdir(exist_ok=True)
        shutil.copy(release / "source" / lab / f"{lab}.ipynb", submissions / "master" / f"{lab}.ipynb")
        nbformat.write(student, submissions / "student" / f"{lab}.ipynb")
        source, replaces, _ = read_mutant(lab)
        mutant = fill_in(nbformat.read(release / "release" / lab / f"{lab}.ipynb", as_version=4),
                         MASTERS[lab], replaces, source)
        nbformat.write(mutant, submissions / "mutant" / f"{lab}.ipynb")
    (submissions / "broken_lab3-transformer-block.ipynb").write_text("{ this is not a notebook")
    report = submissions / "grades.csv"
    run_tool("grade", submissions, "--out", report, "--jobs", "2", "--timeout", "300")
    rows = labs_tool.read_csv(report)
    assert len(rows) == 3 * len(LABS) + 1
    return {(r["student"], r["lab"]): r for r in rows}


@pytest.mark.parametrize("lab", LABS)
def test_master_earns_full_marks_through_the_grader(grades, lab):
    row = grades[("master", lab)]
    assert row["status"] == "ok" and row["notes"] == "", row
    assert float(row["total"]) == float(row["max_points"]) == 10


@pytest.mark.parametrize("lab", LABS)
def test_student_version_earns_zero_and_grading_finishes(grades, lab):
    row = grades[("student", lab)]
    assert row["status"] == "ok", row
    assert float(row["total"]) == 0 and float(row["max_points"]) == 10
    for test in labs_tool.graded_cells(MASTERS[lab]):
        assert row[test] == "0", (test, row)
        assert f"{test}: NotImplementedError" in row["notes"] or f"{test}: NameError" in row["notes"], row["notes"]


@pytest.mark.parametrize("lab", LABS)
def test_wrong_implementation_loses_exactly_its_points(grades, lab):
    _, replaces, loses = read_mutant(lab)
    points = labs_tool.graded_cells(MASTERS[lab])
    assert set(loses) <= set(points) and replaces in {labs_tool.grade_id(c) for c in MASTERS[lab].cells}
    row = grades[("mutant", lab)]
    assert row["status"] == "ok", row
    for test, full in points.items():
        expected = 0 if test in loses else full
        assert float(row[test]) == expected, (test, row[test], row["notes"])
    assert float(row["total"]) == sum(v for t, v in points.items() if t not in loses) < 10


def test_unreadable_submission_is_reported_not_fatal(grades):
    row = grades[("broken", "lab3-transformer-block")]
    assert row["status"].startswith("unreadable") and float(row["total"]) == 0


MINI_LAB = '''---
jupytext:
  text_representation: {extension: .md, format_name: myst, format_version: 0.13, jupytext_version: 1.19.6}
kernelspec: {display_name: Python 3, language: python, name: python3}
---

# A two-question lab for testing the grader

```{code-cell} ipython3
:nbgrader: {grade: false, grade_id: answer, locked: false, schema_version: 3, solution: true}

def answer():
    ### BEGIN SOLUTION
    return 42
    ### END SOLUTION
```

```{code-cell} ipython3
:nbgrader: {grade: true, grade_id: mini_answer, locked: true, points: 2, schema_version: 3, solution: false}

# 2 points
assert answer() == 42
```

```{code-cell} ipython3
:nbgrader: {grade: true, grade_id: mini_free, locked: true, points: 1, schema_version: 3, solution: false}

# 1 point
assert sum(range(4)) == 6  # needs nothing from the student: shows that later cells still run
```
'''


def test_a_crashed_or_hung_kernel_costs_only_that_submission(tmp_path):
    labs = tmp_path / "labs"
    (labs / "fixtures").mkdir(parents=True)
    (labs / "lab1-mini.md").write_text(MINI_LAB)
    master = labs_tool.read_master(labs / "lab1-mini.md")
    submissions = tmp_path / "submitted"
    for who, code in (("good", "def answer():\n    return 42"),
                      ("crash", "import os\nos._exit(1)"),
                      ("hang", "import time\nwhile True:\n    time.sleep(0.1)")):
        notebook = fill_in(labs_tool.student_version(master), master, "answer", code)
        (submissions / who).mkdir(parents=True)
        nbformat.write(notebook, submissions / who / "lab1-mini.ipynb")
    # a student who deleted a graded cell and added one of their own: the grader puts it back
    notebook = fill_in(labs_tool.student_version(master), master)
    notebook.cells = [c for c in notebook.cells if labs_tool.grade_id(c) != "mini_answer"]
    notebook.cells.append(nbformat.v4.new_code_cell("print('my own cell')"))
    (submissions / "tidy").mkdir()
    nbformat.write(notebook, submissions / "tidy" / "lab1-mini.ipynb")
    # a student who got it wrong and emptied the test: the master's test runs all the same
    notebook = fill_in(labs_tool.student_version(master), master, "answer", "def answer():\n    return 41")
    for cell in notebook.cells:
        if labs_tool.grade_id(cell) == "mini_answer":
            cell.source = "# 2 points\npass"
    (submissions / "cheat").mkdir()
    nbformat.write(notebook, submissions / "cheat" / "lab1-mini.ipynb")
    report = tmp_path / "grades.csv"
    run_tool("grade", submissions, "--out", report, "--labs", labs, "--timeout", "4", "--jobs", "2")
    rows = {r["student"]: r for r in labs_tool.read_csv(report)}
    assert (rows["good"]["mini_answer"], rows["good"]["mini_free"], rows["good"]["total"]) == ("2", "1", "3")
    assert rows["tidy"]["total"] == "3", rows["tidy"]
    assert (rows["cheat"]["mini_answer"], rows["cheat"]["total"]) == ("0", "1"), rows["cheat"]
    assert rows["crash"]["total"] == "0" and "kernel died" in rows["crash"]["status"], rows["crash"]
    # the hang is interrupted after 4 s; the next cells still run
    assert (rows["hang"]["mini_answer"], rows["hang"]["mini_free"]) == ("0", "1"), rows["hang"]
    assert "Timeout" in rows["hang"]["notes"] or "KeyboardInterrupt" in rows["hang"]["notes"], rows["hang"]


def test_submission_names_give_student_and_lab(tmp_path):
    for name in ("ann/lab2-attention.ipynb", "ben/lab2/notebook.ipynb", "cy_lab2-attention.ipynb",
                 "lab2_dee.ipynb", "submitted/eve/lab10/x.ipynb", "fay/.ipynb_checkpoints/lab2-attention.ipynb"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    found = {str(p.relative_to(tmp_path)): (s, lab) for s, lab, p in labs_tool.find_submissions(tmp_path, LABS)}
    assert found == {
        "ann/lab2-attention.ipynb": ("ann", "lab2-attention"),
        "ben/lab2/notebook.ipynb": ("ben", "lab2-attention"),
        "cy_lab2-attention.ipynb": ("cy", "lab2-attention"),
        "lab2_dee.ipynb": ("dee", "lab2-attention"),
        "submitted/eve/lab10/x.ipynb": ("submitted", None),  # there is no lab 10
    }
