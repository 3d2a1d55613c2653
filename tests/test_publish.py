"""The published course: the notebooks' set-up cell, the package's data folder outside a clone,
and the addresses everything reads from _config.yml."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import to_ipynb  # noqa: E402
from llmscratch import course, fetch  # noqa: E402


def setup_source() -> str:
    notebook = to_ipynb.convert(ROOT / "lessons" / "02-attention.md", setup=True)
    cell = notebook.cells[1]
    assert cell.cell_type == "code" and "course-setup" in cell.metadata["tags"]
    return cell.source


def test_setup_cell_does_nothing_in_a_clone(monkeypatch):
    called = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: called.append(a))
    monkeypatch.setattr(fetch, "fetch_all", lambda *a, **k: called.append("fetch"))
    assert course.IN_CHECKOUT
    exec(compile(setup_source(), "setup-cell", "exec"), {})
    assert called == []


def test_setup_cell_installs_the_published_wheel_and_fits_the_page():
    source, info = setup_source(), to_ipynb.published()
    assert f'COURSE_VERSION = "{info["version"]}"' in source
    assert f'COURSE_SITE = "{info["site_url"]}"' in source
    wheel = info["wheel"].removeprefix(info["site_url"]).replace(info["version"], "{COURSE_VERSION}")
    assert f'f"{{COURSE_SITE}}{wheel}"' in source
    assert max(len(line) for line in source.splitlines()) <= 80


def test_addresses_come_from_config():
    info = to_ipynb.published()
    config = (ROOT / "_config.yml").read_text()
    assert info["repository"] in config and info["site_url"] in config
    # written nowhere else by hand: the README's block is generated (make readme)
    for path in ["book/setup.md", "binder/postBuild", "tools/publish.py", "book/_ext/course_site.py"]:
        assert info["repository"] not in (ROOT / path).read_text(), path


def test_data_outside_a_clone(monkeypatch, tmp_path):
    monkeypatch.setattr(course, "IN_CHECKOUT", False)
    monkeypatch.chdir(tmp_path)
    assert course._default_data() == tmp_path / "data"
    # a working folder the reader cannot write to: the user's cache instead
    monkeypatch.setattr(course.os, "access", lambda path, mode: False)
    assert course._default_data() == Path.home() / ".cache" / "llmscratch" / "data"


def test_unknown_asset_says_which_exist():
    with pytest.raises(fetch.FetchError, match="known:"):
        fetch.fetch_all(["no-such-asset"])


def test_mathjax_pin_is_complete():
    entry = json.loads((ROOT / "book" / "vendor.json").read_text())["mathjax"]
    assert entry["registry"] == "npm" and len(entry["sha256"]) == 64
    assert f"es5/{entry['entry']}" in entry["keep"]


def test_launch_link_check_catches_wrong_links(tmp_path):
    import check_site

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "02-attention.ipynb").write_text("{}")
    info = to_ipynb.published()
    (tmp_path / "published.json").write_text(json.dumps(info))
    checker = check_site.Checker(tmp_path, "http://127.0.0.1:1/", student=False)
    repo = info["repository"].split("github.com/")[1]
    colab = f"{info['colab_url']}/github/{repo}/blob/gh-pages/notebooks/02-attention.ipynb"
    binder = (f"{info['binderhub_url']}/v2/gh/{repo}/main"
              "?urlpath=lab/tree/lessons/02-attention.md")
    assert checker.check_launch_links("lessons/02-attention", [colab, binder]) == []
    wrong = [colab.replace("02-attention", "03-gpt-model"),
             colab.replace(repo, "someone/else"),
             binder.replace("02-attention.md", "09-nothing.md")]
    problems = checker.check_launch_links("lessons/02-attention", wrong)
    assert len(problems) == 3, problems
    assert checker.check_launch_links("lessons/02-attention", []) == [
        "no launch link (Colab or Binder) on a chapter page"]
