"""tools/check_prose.py fails on hand-typed figures and development words, passes clean prose."""
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_prose", ROOT / "tools" / "check_prose.py")
check_prose = importlib.util.module_from_spec(spec)
sys.modules["check_prose"] = check_prose  # dataclasses look their module up
spec.loader.exec_module(check_prose)

HEADER = """---
jupytext:
  text_representation:
    format_version: 0.13
kernelspec:
  name: python3
---

# 5. Fine-tuning for classification

"""

CLEAN = HEADER + """(sec-results)=
## 5.9 Results

```{code-cell} ipython3
---
tags: [hide-input]
---
glue("acc_bow", f"{0.788:.1%}", display=False)
x = 123456 + 2 ** 10
```

Bag of words reaches {glue:text}`acc_bow` on the test split (see section 5.3 and chapter 4,
and {numref}`fig-ch5-loss`). Its loss starts near $\\ln 2 \\approx 0.693$, and
$$
p = \\frac{1}{1 + e^{-z}}
$$
holds for every review. GPT-2, SmolLM2-135M, Qwen2.5-Coder-0.5B, the 124M model, Q4_1 and
Q8_0 weights, fp32, bf16, float32 and int8, r50k_base, UTF-8 and SHA-256 are names; so is top-5.
Python 3.11 came out in 2022. The original paper reports 86.3 % on its benchmark
{cite}`hu2021lora`. See [the setup page](setup-2.md) and `lr = 3e-4`.

1. First step, with `k = 8` in code.
2. Second step.

<!-- a comment with 42 in it -->

```{exercise} Ranks and tasks
:label: ex-5-2

Redo figure 4.2 with chapters 1–4, sections 7.3 and 7.5, and lab 5's task 3.
```

| task | function | points |
|---|---|---|
| 1 | `count_pairs` | 2 |
| | **total** | **10** |

The word tissue is fine.
"""


def write(tmp_path, text):
    path = tmp_path / "page.md"
    path.write_text(text)
    return path


def rules(problems):
    return [(p.rule, p.text) for p in problems]


def test_clean_sample_passes(tmp_path):
    assert rules(check_prose.check_file(write(tmp_path, CLEAN))) == []
    assert check_prose.main([str(write(tmp_path, CLEAN))]) == 0


def test_planted_percentage_fails(tmp_path):
    planted = CLEAN.replace("holds for every review.",
                            "holds for every review. LoRA reaches 69.7 % of reviews.")
    problems = check_prose.check_file(write(tmp_path, planted))
    assert rules(problems) == [("digit", "69.7")]
    line = planted.split("\n").index(next(l for l in planted.split("\n") if "69.7" in l)) + 1
    assert problems[0].line == line
    assert check_prose.main([str(tmp_path / "page.md")]) == 1


def test_planted_issue_fails(tmp_path):
    planted = CLEAN.replace("The word tissue is fine.",
                            "The word tissue is fine. Now the check the Issue asks for.")
    assert rules(check_prose.check_file(write(tmp_path, planted))) == [("words", "Issue")]


def test_digits_in_other_prose_places_fail(tmp_path):
    cases = {
        "a measured count in a list item": "- It has 5,849,090 parameters.\n",
        "a ratio": "About 4.6× faster.\n",
        "scientific notation": "The logits agree to about 1e-6.\n",
        "a directive title": "```{admonition} The 3 runs\nText.\n```\n",
        "an exercise body": "```{exercise}\n:label: ex-1\n\nTrain for 40 steps.\n```\n",
        "a {term} role's text": "A {term}`3-gram` model.\n",
        "a cited paper's sentence does not cover the next one":
            "A paper {cite}`x` reports 12 %. We measured 15 %.\n",
    }
    for what, text in cases.items():
        found = check_prose.check_file(write(tmp_path, HEADER + text))
        assert [p.rule for p in found] == ["digit"], (what, rules(found))


def test_long_code_lines_fail_unless_skipped(tmp_path):
    long_line = "x = " + "1 + " * 20 + "1"
    assert len(long_line) > 80
    text = HEADER + f"```{{code-cell}} ipython3\n{long_line}\n```\n"
    path = write(tmp_path, text)
    found = check_prose.check_file(path)
    assert rules(found) == [("width", f"{len(long_line)} characters")]
    assert found[0].line == text.split("\n").index(long_line) + 1
    assert check_prose.check_file(path, width=False) == []
