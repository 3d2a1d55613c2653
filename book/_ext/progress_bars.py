"""Progress bars in captured output, shown the way a terminal would have left them.

A tqdm bar redraws itself with carriage returns. A terminal overwrites the line, so the reader
sees one bar in its final state; the captured stream keeps every refresh, and myst-nb's merge of
stream messages puts each one on its own line. `collapse` turns such text back into what the
terminal showed. The site extension (course_site.py) applies it to every stream output of the
pages, and tools/check_site.py uses `superseded` to check the built pages; live notebooks are
untouched and keep their moving bars. No Sphinx imports here, so the browser check can load it.
"""
from __future__ import annotations

import re

# A tqdm state: "desc:  42%|####2     | 210/500 [00:30<00:41,  7.02it/s]" (a known total)
# or "desc: 210it [00:30,  7.02it/s]" (no total). The description may be empty.
BAR = re.compile(
    r"^(?P<desc>.*?)(?::\s*)?"
    r"(?:\s*\d{1,3}%\|[^|\n]*\|\s*(?P<n>\d+(?:\.\d+)?[kMG]?)/(?P<total>\d+(?:\.\d+)?[kMG]?)"
    r"|\s*(?P<count>\d+(?:\.\d+)?[kMG]?)(?:it|B|s)?)\s*\[[^\]\n]*\]\s*$")

_SCALE = {"k": 1e3, "M": 1e6, "G": 1e9}


def _number(text: str) -> float:
    return float(text[:-1]) * _SCALE[text[-1]] if text[-1] in _SCALE else float(text)


def terminal_line(line: str) -> str:
    """What a terminal shows for one line: each carriage return goes back to column zero and the
    text after it overwrites what was there."""
    if "\r" not in line:
        return line
    shown: list[str] = []
    for part in line.split("\r"):
        shown[: len(part)] = part
    return "".join(shown).rstrip()


def bar_state(line: str):
    """(description, count, total) of a tqdm line, or None if the line is not a bar."""
    match = BAR.match(line)
    if not match:
        return None
    if match.group("n") is not None:
        return match.group("desc").strip(), _number(match.group("n")), match.group("total")
    return match.group("desc").strip(), _number(match.group("count")), None


def superseded(lines: list[str]) -> list[int]:
    """Indices of bar lines that a later refresh of the same bar overwrote: a later line of the
    same description and total whose count has not gone back (a bar that starts again from a
    lower count is a new bar, and the finished one stays, as in a terminal)."""
    states = [bar_state(line) for line in lines]
    dropped = []
    for i, state in enumerate(states):
        if state is None:
            continue
        for later in states[i + 1:]:
            if later is not None and later[0] == state[0] and later[2] == state[2]:
                if later[1] >= state[1]:
                    dropped.append(i)
                break
    return dropped


def collapse(text: str) -> str:
    """The text as a terminal would show it at the end: each bar once, in its final state."""
    lines = [terminal_line(line) for line in text.split("\n")]
    dropped = set(superseded(lines))
    kept = [line for i, line in enumerate(lines) if i not in dropped]
    # A closing bar writes a newline of its own, and myst-nb ends every merged stream message
    # with one more: a blank line the terminal never showed between a bar and the next print.
    return "\n".join(line for i, line in enumerate(kept)
                     if line or not (0 < i < len(kept) - 1 and bar_state(kept[i - 1])
                                     and kept[i + 1]))
