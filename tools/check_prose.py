"""Check the learner-facing text of the lessons and labs.

    python tools/check_prose.py                 # lessons/*.md and labs/lab*.md
    python tools/check_prose.py lessons/05-classification.md ...
    python tools/check_prose.py --no-width ...  # prose rules only

Three rules, each failure reported as file:line with the offending text; exit status 1 if any:

* digit: a digit in markdown prose is a figure typed by hand. Figures come from the run that
  builds the page (`{glue:text}` roles), so a digit may only appear where the prose is not
  prose: code cells, fenced code, inline code, math, MyST roles that hold keys or references,
  directive options, labels, link targets, HTML comments, the YAML header. A digit that is still
  left must match the short ALLOWLIST below (each entry says why it is allowed).
* words: development vocabulary (VOCABULARY below) does not belong in text for learners.
* width: a line of a code cell or a code fence longer than 80 characters (the page shows about
  80; longer lines need horizontal scrolling). One tool so that one command checks a page;
  `--no-width` leaves this rule out.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path.cwd()  # the repository: make and CI run from its root
MAX_CODE_WIDTH = 80

# Text of a role whose content is a key, a citation key or a reference target: not prose.
OPAQUE_ROLES = re.compile(
    r"\{(?:glue(?::[a-z]+)?|cite(?::[a-z]+)?|ref|numref|doc|eq|math|download)\}(`+)(.*?)\1",
    re.S)
ANY_ROLE = re.compile(r"(\{[A-Za-z][\w:-]*\}(`+))(.*?)(\2)", re.S)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
DISPLAY_MATH = re.compile(r"\$\$.+?\$\$", re.S)
INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\s)[^$\n]+?(?<![\s\\])\$(?!\d)")
PAREN_MATH = re.compile(r"\\\(.+?\\\)|\\\[.+?\\\]", re.S)
LINK_TARGET = re.compile(r"\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")  # the (target) of [text](target)
AUTOLINK = re.compile(r"<[a-z]+://[^>]+>|\bhttps?://\S+|\bwww\.\S+")
HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
FOOTNOTE = re.compile(r"\[\^[^\]]+\]")
SUBSTITUTION = re.compile(r"\{\{.*?\}\}", re.S)

# The allowlist. Each entry: (pattern that removes allowed text from a line, why it is allowed).
ALLOWLIST = [
    (r"^[ \t]*#{1,6}[ \t]+\d+(?:\.\d+)*\.?(?=\s)",
     "a heading's chapter or section number: '# 5. Fine-tuning', '## 7.9 Results'"),
    (r"^[ \t>]*\d+[.)](?=[ \t])",
     "an ordered-list marker: '1. First step'"),
    (r"(?i)\b(?:chapters?|sections?|figures?|tables?|exercises?|labs?|stages?"
     r"|tasks?|appendix|equations?|ch\.)\s+\d+(?:\.\d+)*(?:\s*(?:,|–|-|to|and|or|&)\s*\d+(?:\.\d+)*)*",
     "a reference to a numbered part of the course: 'chapter 5', 'sections 7.3–7.5', 'figure 4.2'"),
    (r"\b(?:19\d\d|20[0-3]\d)s?\b",
     "a year, 1900-2039: '2017', 'the 1990s'"),
    (r"\b(?=[A-Za-z][\w.-]*\d)[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*",
     "a name whose digits belong to it, starting with a letter: GPT-2, fp32, bf16, float32, int8,"
     " Q4_1, Q8_0, r50k_base, UTF-8, SHA-256, SmolLM2-135M, Qwen2.5-Coder-0.5B, top-5"),
    (r"\b\d+[MB]\b",
     "a model's size as part of its name: 'the 124M model', 'a 7B model' (whole numbers only;"
     " a measured count such as 5.9M is glued)"),
    (r"\bPython\s+3(?:\.\d+)+",
     "a Python version: 'Python 3.11'"),
    (r"\bHTTP\s+[1-5]\d\d\b",
     "an HTTP status code: 'HTTP 503'"),
]
# A lab's grading table (a table whose header names the points): task numbers and points are
# the lab's own constants.
POINTS_TABLE = re.compile(r"^\s*\|.*\bpoints?\b.*\|\s*$", re.I | re.M)
INTEGER_CELL = re.compile(r"(?<=\|)[ \t]*(?:\*\*)?\d{1,3}(?:\*\*)?[ \t]*(?=\|)")
ALLOW = [re.compile(pattern, re.M) for pattern, _ in ALLOWLIST]
DIGIT_TOKEN = re.compile(r"[\w.,%+\-×/]*\d[\w.,%+\-×/]*")

# Development vocabulary: words about how the course was made, not about the subject.
VOCABULARY = re.compile(
    r"(?i)\b(?:issues?|design[ -]notes?|design[ -]docs?|design document|the lead|lead's"
    r"|reviewers?\s+(?:asked|asks|wants?|wanted|requested)|CI\s+(?:asks|asked|wants?)"
    r"|the brief|TODO|FIXME|XXX|helper\s+(?:session|branch)|worktree)\b")

# Directives whose body is not markdown prose (code, math, raw output, file lists).
CODE_DIRECTIVES = {"code-cell", "code", "code-block", "sourcecode", "math", "raw", "literalinclude",
                   "toctree", "tableofcontents", "bibliography", "mermaid", "eval-rst",
                   "glue", "glue:figure", "glue:any", "glue:math", "glue:md"}
# Directives whose argument is a path or a label rather than a title.
NON_TITLE_ARGUMENT = {"figure", "image", "include", "literalinclude", "solution", "solution-start",
                      "solution-end", "exercise-start", "exercise-end", "glue:figure", "embed"}
FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,}|:{3,})[ \t]*(\{([^}]*)\})?[ \t]*(.*)$")


@dataclass
class Problem:
    path: str
    line: int
    rule: str
    text: str
    context: str

    def __str__(self):
        return f"{self.path}:{self.line}: {self.rule}: {self.text!r} in: {self.context.strip()}"


def blank(match: re.Match) -> str:
    """Spaces in place of a match, keeping newlines so offsets and line numbers stay put."""
    return re.sub(r"[^\n]", " ", match.group(0))


def mask_prose(text: str) -> str:
    """The text with every part that is not prose blanked out."""
    for pattern in (OPAQUE_ROLES, SUBSTITUTION, DISPLAY_MATH, PAREN_MATH):
        text = pattern.sub(blank, text)
    # {term}`word`: the word stays prose, the role's name and backticks go
    text = ANY_ROLE.sub(lambda m: " " * len(m.group(1)) + m.group(3) + " " * len(m.group(4)),
                        text)
    for pattern in (INLINE_CODE, INLINE_MATH, LINK_TARGET, AUTOLINK, HTML_TAG, FOOTNOTE):
        text = pattern.sub(blank, text)
    return text


def split_blocks(source: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(prose lines, code lines) of a MyST file, each as (line number, text)."""
    # HTML comments and the YAML header are blanked first (they may span lines).
    source = re.sub(r"<!--.*?-->", blank, source, flags=re.S)
    source = re.sub(r"\A---\n.*?\n---\n", blank, source, flags=re.S)
    prose, code = [], []
    stack = []  # open fences: (fence string, kind) with kind "code" or "prose"
    options = False  # inside a directive's option block (:key: lines or a --- YAML block)
    yaml_options = False
    in_math = False
    for number, line in enumerate(source.split("\n"), start=1):
        inner_kind = stack[-1][1] if stack else "prose"
        fence = FENCE.match(line)
        if fence and stack and fence.group(2)[0] == stack[-1][0][0] \
                and len(fence.group(2)) >= len(stack[-1][0]) and not fence.group(3) \
                and not fence.group(5).strip():
            stack.pop()
            options = yaml_options = False
            continue
        if yaml_options:
            if line.strip() == "---":
                yaml_options = False
            continue
        if options:
            if line.strip() == "---" and not stack[-1][2]:
                yaml_options = True
                stack[-1] = (*stack[-1][:2], True)
                continue
            if re.match(r"^\s*:[\w-]+:", line):
                stack[-1] = (*stack[-1][:2], True)
                continue
            options = False
        if inner_kind == "code":
            code.append((number, line))
            continue
        if fence and (fence.group(2)[0] != ":" or fence.group(3)):
            name = (fence.group(4) or "").strip()
            is_code = fence.group(2)[0] != ":" and (not fence.group(3) or name in CODE_DIRECTIVES)
            stack.append((fence.group(2), "code" if is_code else "prose", False))
            options = bool(fence.group(3))
            argument = fence.group(5)
            if not is_code and name not in NON_TITLE_ARGUMENT and argument:
                prose.append((number, " " * (len(line) - len(argument)) + argument))
            continue
        stripped = line.strip()
        if re.match(r"^\\begin\{", stripped):
            in_math = True
        if in_math:
            in_math = not re.match(r"^\\end\{", stripped)
            continue
        if stripped.startswith("+++") or stripped.startswith("%") \
                or re.match(r"^\([\w:.-]+\)=\s*$", stripped) \
                or re.match(r"^\[[^\]]+\]:\s+\S+", stripped):
            prose.append((number, ""))  # a cell break, a comment, a label, a link definition
            continue
        prose.append((number, line))
    return prose, code


def paragraphs(prose: list[tuple[int, str]]):
    """Runs of consecutive non-blank prose lines: (first line number, text)."""
    run: list[tuple[int, str]] = []
    for number, line in prose + [(0, "")]:
        if line.strip() and (not run or number == run[-1][0] + 1):
            run.append((number, line))
            continue
        if run:
            yield run[0][0], "\n".join(text for _, text in run)
        run = [(number, line)] if line.strip() else []


UNIT_START = re.compile(r"\n(?=[ \t]*(?:\||[-*+][ \t]|\d+[.)][ \t]|#))")  # table rows, list items
SENTENCE_END = re.compile(r"(?<=[.!?])[ \t\n]+(?=[\"'(*_]*[A-Z])")


def cited_spans(text: str) -> list[tuple[int, int]]:
    """Sentences (within a list item or table row) that carry a {cite} role."""
    spans, start = [], 0
    bounds = sorted({m.end() for m in UNIT_START.finditer(text)} |
                    {m.end() for m in SENTENCE_END.finditer(text)} | {len(text)})
    for end in bounds:
        if "{cite" in text[start:end]:
            spans.append((start, end))
        start = end
    return spans


def display_name(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def check_file(path: Path, width: bool = True) -> list[Problem]:
    source = path.read_text(encoding="utf-8")
    lines = source.split("\n")
    name = display_name(path)
    prose, code = split_blocks(source)
    problems = []
    for first, text in paragraphs(prose):
        masked = mask_prose(text)
        if POINTS_TABLE.match(text):
            masked = INTEGER_CELL.sub(blank, masked)
        for pattern in ALLOW:
            masked = pattern.sub(blank, masked)
        cited = cited_spans(text)
        for match in DIGIT_TOKEN.finditer(masked):
            if any(a <= match.start() < b for a, b in cited):
                continue  # a figure quoted from a cited paper
            line = first + text.count("\n", 0, match.start())
            token = match.group(0).rstrip(".,-/")
            problems.append(Problem(name, line, "digit", token, lines[line - 1]))
        for match in VOCABULARY.finditer(mask_prose(text)):
            line = first + text.count("\n", 0, match.start())
            problems.append(Problem(name, line, "words", match.group(0), lines[line - 1]))
    if width:
        for number, line in code:
            if len(line) > MAX_CODE_WIDTH:
                problems.append(Problem(name, number, "width", f"{len(line)} characters",
                                        line[:60] + "…"))
    return sorted(problems, key=lambda p: (p.line, p.rule))


def default_files() -> list[Path]:
    return sorted((ROOT / "lessons").glob("*.md")) + sorted((ROOT / "labs").glob("lab*.md"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="default: lessons/*.md labs/lab*.md")
    parser.add_argument("--no-width", action="store_true", help="skip the code-width rule")
    parser.add_argument("--allowlist", action="store_true", help="print the allowlist and exit")
    args = parser.parse_args(argv)
    if args.allowlist:
        for pattern, why in ALLOWLIST:
            print(f"{why}\n    {pattern}")
        print("a whole number alone in a cell of a table whose header names the points"
              " (a lab's grading table: task numbers and points)")
        print("any number in a sentence that carries a {cite} role (a figure quoted from a paper)")
        return 0
    files = args.files or default_files()
    if not files:
        print("check_prose: no lessons/*.md or labs/lab*.md here: run it from the repository "
              "root or name the files", file=sys.stderr)
        return 2
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f"check_prose: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    total, counts = 0, []
    for path in files:
        problems = check_file(path, width=not args.no_width)
        for problem in problems:
            print(problem)
        total += len(problems)
        if problems:
            by_rule = {r: sum(p.rule == r for p in problems) for r in ("digit", "words", "width")}
            counts.append(f"  {display_name(path)}: " + ", ".join(f"{n} {r}" for r, n in by_rule.items() if n))
    if total:
        print(f"\ncheck_prose: {total} problem(s):\n" + "\n".join(counts) +
              "\nGlue computed figures ({glue:text}`key`), reword development vocabulary, "
              f"and keep code lines within {MAX_CODE_WIDTH} characters.", file=sys.stderr)
        return 1
    print(f"check_prose: {len(files)} file(s) clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
