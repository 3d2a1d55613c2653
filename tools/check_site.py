"""Open the built course site in headless Chromium and check it the way a reader would see it.

    python tools/check_site.py [SITE] [--screenshots DIR] [--student]

SITE defaults to _build/html. The pages are the ones _toc.yml lists (plus any other page the
site's navigation links to). For each page:

* it loads over HTTP with status 200, runs without a JavaScript error, and every file it loads
  from the site itself exists;
* it has a title: an <h1>, repeated in the window title; a chapter's starts with its number;
* every image on it has loaded and has a size, and alt text that is not empty, a file name or
  a hash; a chapter shows at least one figure, and every figure in a chapter's outputs is a
  numbered figure with a caption;
* no stream output shows more than MAX_BAR_REFRESHES lines of progress-bar refreshes (states
  a later refresh of the same bar overwrote; the site shows each bar once, as it ended);
* no element of the page's content is wider than its container: nothing sticks out of the
  text column, and no code block, table or output needs horizontal scrolling;
* no cell output shows a Python traceback;
* every link inside the site points at a file that exists and, if it has an #anchor, at an
  element with that id;
* a chapter links to its notebook (notebooks/NN-name.ipynb, which must be a valid notebook)
  and, in the student edition (--student), shows no solution and its notebook holds none;
* every launch link on a chapter page (Colab, Binder) uses the repository the site was built
  for (published.json, written from _config.yml) and opens a notebook that exists in this
  build (Binder opens the chapter's MyST source, which must exist in the repository, and the
  same chapter's notebook must be in the build);
* every equation on the page has been typeset by MathJax, without a MathJax error, by the
  MathJax the site serves itself.

At least one chapter must show a typeset equation of non-zero size. Any request that leaves the
local server (a CDN, a font service, anything) is blocked and fails the check: the site must
work offline. Then the site's search must return at least one result for "attention", and the
first chapter
is opened again in the theme's dark mode: its figures must sit on an opaque white card, code and
tables must keep readable contrast, and its screenshot is saved as <chapter>__dark.png. A
full-page screenshot of every page goes to DIR (default: screenshots/ next to SITE, so
_build/screenshots). Each failure names the page and the element. Links
to other websites are counted but not followed.

The playground page (book/playground.md; its files come from tools/playground.py) is checked
again with the model running: its header names the SHA-256 of the weights in
checkpoints/course-gpt/SHA256SUMS and of the weight file it ships; the page's token ids equal
tiktoken's on the fixed list of strings the build wrote (check.json); its logits for the fixed
prompts equal PyTorch's (same dequantised weights) within the stated tolerance, and a weight
changed by one int8 step moves them beyond it (the comparison can fail); greedy generation picks
PyTorch's tokens one for one; one head's attention weights equal PyTorch's. Driven by keyboard
alone from a cold browser (Ctrl+Enter in the prompt), it must show its first generated token
within PLAYGROUND_FIRST_TOKEN_S of the navigation; a second visit must take the weights from the
browser's cache. It prints tokens/s, the time to first token and the bytes transferred, fits a
phone's width (PHONE_WIDTH), and saves two more screenshots (after generating; on a phone).

Prints one line a check and a closing "N passed, M failed" line; exits 1 when a check fails and
2 when Chromium or Playwright is missing (saying how to get them).
"""
from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import shutil
import sys
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SEARCH_WORD = "attention"
LESSON = re.compile(r"^lessons/(\d\d)-(?!report-card$)[\w-]+$")  # as in book/_ext/course_site.py
MAX_BAR_REFRESHES = 3
PLAYGROUND = "book/playground"
PLAYGROUND_FIRST_TOKEN_S = 3.0  # from navigation to the first generated token, cold cache
PHONE_WIDTH = 375  # CSS pixels: a small phone held upright
# An alt text that is a file name, a path or a hash says nothing to a screen reader.
BAD_ALT = re.compile(r"^\s*$|\.(?:png|jpe?g|svg|gif|webp)\s*$|_images/|[0-9a-f]{16,}", re.I)


def load_progress_bars():
    """book/_ext/progress_bars.py: the same reading of progress bars the site build uses."""
    import importlib.util

    path = ROOT / "book" / "_ext" / "progress_bars.py"
    spec = importlib.util.spec_from_file_location("progress_bars", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["progress_bars"] = module
    spec.loader.exec_module(module)
    return module


PROGRESS_BARS = load_progress_bars()

# Run in the page: everything the checks need, in one round trip.
INSPECT_JS = """
async () => {
  const text = el => { const c = el.cloneNode(true); c.querySelectorAll('.headerlink').forEach(a => a.remove());
                       return c.textContent.trim(); };
  const h1 = document.querySelector('main h1, article h1, h1');
  const images = [];
  for (const img of document.querySelectorAll('img')) {
    img.loading = 'eager';
    const settled = img.decode().then(() => true, () => false);
    const timeout = new Promise(r => setTimeout(() => r(false), 15000));
    await Promise.race([settled, timeout]);
    const figure = img.closest('figure');
    images.push({src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0,
                 width: img.naturalWidth, output: !!img.closest('.cell_output, figure'),
                 alt: img.getAttribute('alt'), in_output: !!img.closest('.cell_output'),
                 caption: figure && figure.querySelector('figcaption')
                          ? text(figure.querySelector('figcaption')).slice(0, 80) : null});
  }
  const describe = el => {
    const cls = [...el.classList].slice(0, 3).join('.');
    const sample = (el.textContent || el.getAttribute('src') || '').trim().replace(/\\s+/g, ' ');
    let heading = '';
    for (let h = el; h && !heading; h = h.parentElement) {
      const section = h.closest('section');
      if (section) { const t = section.querySelector('h1, h2, h3'); heading = t ? text(t) : ''; }
    }
    return `<${el.tagName.toLowerCase()}${cls ? '.' + cls : ''}> "${sample.slice(0, 50)}"`
           + (heading ? ` under "${heading.slice(0, 50)}"` : '');
  };
  const article = document.querySelector('article.bd-article') || document.body;
  const right = article.getBoundingClientRect().right;
  const wide = [];
  const exempt = '.full-width, .tag_full-width, .margin, .sidebar, .tag_margin, .headerlink, mjx-assistive-mml';
  for (const el of article.querySelectorAll('*')) {
    if (el.closest(exempt)) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    const style = getComputedStyle(el);
    const scrolls = ['auto', 'scroll', 'hidden'].includes(style.overflowX);
    // MathJax's glyphs overhang their own box by a few px (italics, subscripts), which the
    // theme's overflow:hidden inline math counts as scroll width: only a typeset formula whose
    // box is wider than its span is really cut off.
    const formula = el.matches('span.math') && el.querySelector('mjx-container');
    const fits = formula && formula.getBoundingClientRect().width <= el.clientWidth + 2;
    if (scrolls && el.scrollWidth > el.clientWidth + 2 && !fits) {
      wide.push(`${describe(el)} needs horizontal scrolling: content ${el.scrollWidth} px in ${el.clientWidth} px`);
    } else if (box.right > right + 2 && !el.parentElement.closest('pre')) {
      wide.push(`${describe(el)} sticks out of the text column by ${Math.round(box.right - right)} px`);
    }
  }
  const streams = [...document.querySelectorAll('.cell_output .output.stream, .cell_output .output.stderr')]
    .map(o => o.textContent);
  const tracebacks = [];
  for (const out of document.querySelectorAll('.cell_output, .output')) {
    const t = out.textContent;
    if (out.matches('.traceback, .error') || t.includes('Traceback (most recent call last)'))
      tracebacks.push(t.trim().slice(0, 300));
  }
  return {
    title: document.title,
    h1: h1 ? text(h1) : '',
    images,
    tracebacks,
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    solutions: document.querySelectorAll('.solution, .solution-start').length,
    wide: wide.slice(0, 20),
    streams,
    nav: [...document.querySelectorAll('nav.bd-docs-nav a.reference.internal')].map(a => a.href),
  };
}
"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the report readable
        pass


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def toc_pages(toc: Path) -> list[str]:
    """Docnames in _toc.yml order: the root, then every `file:` entry."""
    text = toc.read_text()
    names = re.findall(r"^\s*root:\s*(\S+)", text, re.M) + re.findall(r"^\s*-?\s*file:\s*(\S+)", text, re.M)
    return [re.sub(r"\.(md|ipynb)$", "", n) for n in names]


def find_chromium() -> str:
    candidates = [os.environ.get("CHROMIUM", "")] + [shutil.which(n) or "" for n in
                                                     ("chromium", "chromium-browser", "google-chrome")]
    found = next((c for c in candidates if c and Path(c).exists()), None)
    if not found:
        _missing(
            "Chromium not found. Install Debian's (or Ubuntu's) package with\n"
            "    sudo apt-get update && sudo apt-get install -y chromium\n"
            "or point CHROMIUM at a Chrome/Chromium binary: CHROMIUM=/path/to/chrome make check-site"
        )
    return found


def _missing(message: str):
    print(f"check_site: {message}", file=sys.stderr)
    sys.exit(2)


# After the page has loaded: wait for MathJax's first typesetting, then count the equations
# Sphinx wrote (.math) and those MathJax turned into an <mjx-container>.
MATH_JS = """async () => {
  const maths = [...document.querySelectorAll('.bd-article .math')];
  const script = [...document.scripts].map(s => s.src).find(s => /mathjax/i.test(s)) || null;
  const mj = window.MathJax;
  if (maths.length && mj && mj.startup && mj.startup.promise) {
    await Promise.race([mj.startup.promise, new Promise(r => setTimeout(r, 15000))]);
  }
  const done = maths.map(m => m.querySelector('mjx-container')).filter(Boolean);
  return {total: maths.length, rendered: done.length, script,
          version: (mj && mj.version) || null,
          errors: document.querySelectorAll('mjx-merror').length,
          widest: Math.max(0, ...done.map(c => c.getBoundingClientRect().width))};
}"""


class Checker:
    def __init__(self, site: Path, base: str, student: bool):
        self.site, self.base, self.student = site, base, student
        self.ids: dict[Path, set[str]] = {}
        published = site / "published.json"
        self.published = json.loads(published.read_text()) if published.is_file() else None

    def local_file(self, url: str) -> Path | None:
        """The file of the site a same-origin URL points at, or None for other origins."""
        if not url.startswith(self.base):
            return None
        path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
        target = self.site / path.lstrip("/")
        return target / "index.html" if target.is_dir() else target

    def ids_of(self, path: Path) -> set[str]:
        if path not in self.ids:
            text = path.read_text(errors="replace") if path.suffix == ".html" else ""
            self.ids[path] = set(re.findall(r'\b(?:id|name)="([^"]+)"', text))
        return self.ids[path]

    def check_links(self, page_file: Path, links: list[str], own_ids: set[str]) -> tuple[list[str], int, int]:
        problems, internal, external = [], 0, 0
        for url in sorted(set(links)):
            scheme = urllib.parse.urlsplit(url).scheme
            if scheme in ("mailto", "javascript", "data"):
                continue
            target = self.local_file(url)
            if target is None:
                external += 1
                continue
            internal += 1
            if not target.is_file():
                problems.append(f"broken link {url.replace(self.base, '/')}")
                continue
            fragment = urllib.parse.unquote(urllib.parse.urlsplit(url).fragment)
            if fragment:
                known = own_ids if target == page_file else self.ids_of(target)
                if fragment not in known:
                    problems.append(f"missing anchor {url.replace(self.base, '/')}")
        return problems, internal, external

    def check_notebook(self, docname: str, links: list[str]) -> list[str]:
        name = f"notebooks/{Path(docname).name}.ipynb"
        problems = []
        if not any(self.local_file(u) == self.site / name for u in links):
            problems.append(f"no link to its notebook {name}")
        path = self.site / name
        if not path.is_file():
            return problems + [f"notebook {name} is missing"]
        try:
            notebook = json.loads(path.read_text())
            assert notebook["nbformat"] == 4 and notebook["cells"]
        except (ValueError, KeyError, AssertionError):
            return problems + [f"{name} is not a valid notebook"]
        text = path.read_text()
        if self.student and "solution-start" in text:
            problems.append(f"{name} still holds a solution")
        if not any("colab.research.google.com" in u and u.endswith(name) for u in links):
            problems.append(f"no Colab link to {name}")
        return problems + self.check_launch_links(docname, links)

    def check_launch_links(self, docname: str, links: list[str]) -> list[str]:
        """Colab and Binder links: the configured repository, and a notebook this build has."""
        if self.published is None:
            return ["published.json is missing from the site: the site extension writes it"]
        org_repo = self.published["repository"].rstrip("/").split("github.com/")[1]
        colab = self.published["colab_url"].rstrip("/") + "/github/"
        binder = self.published["binderhub_url"].rstrip("/") + "/v2/gh/"
        problems, launches = [], 0
        for url in sorted(set(links)):
            parts = urllib.parse.urlsplit(url)
            if url.startswith(colab):
                launches += 1
                # .../github/ORG/REPO/blob/BRANCH/path/in/the/published/site
                rest = url[len(colab):].split("/")
                where, branch, path = "/".join(rest[:2]), rest[3], "/".join(rest[4:])
                if where != org_repo or rest[2] != "blob" or branch != self.published["pages_branch"]:
                    problems.append(f"Colab link {url} does not open {org_repo}'s "
                                    f"{self.published['pages_branch']} branch")
                prefix = self.published["site_prefix"]
                if not path.startswith(prefix) or not (self.site / path[len(prefix):]).is_file():
                    problems.append(f"Colab link {url} opens {path}, which this build lacks")
            elif url.startswith(binder):
                launches += 1
                # .../v2/gh/ORG/REPO/BRANCH?urlpath=lab/tree/lessons/NN-name.md
                where = "/".join(url[len(binder):].split("?")[0].split("/")[:2])
                target = urllib.parse.parse_qs(parts.query).get("urlpath", [""])[0]
                source = target.removeprefix("lab/tree/")
                if where != org_repo:
                    problems.append(f"Binder link {url} does not build {org_repo}")
                if source != f"{docname}.md" or not (ROOT / source).is_file():
                    problems.append(f"Binder link {url} opens {source!r}, not this chapter's source")
                if not (self.site / f"notebooks/{Path(docname).name}.ipynb").is_file():
                    problems.append(f"Binder link {url}: the chapter's notebook is not in the build")
        if not launches:
            problems.append("no launch link (Colab or Binder) on a chapter page")
        return problems


def check_page(page, checker: Checker, docname: str, shots: Path) -> dict:
    url = checker.base + docname + ".html"
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"JavaScript error: {exc}"))
    page.on("response", lambda r: errors.append(f"HTTP {r.status} for {r.url.replace(checker.base, '/')}")
            if r.url.startswith(checker.base) and r.status >= 400 else None)
    started = time.perf_counter()
    response = page.goto(url, wait_until="load")
    if response is None or response.status != 200:
        return {"page": docname, "problems": [f"did not load (status {response and response.status})"]}
    math = page.evaluate(MATH_JS)
    info = page.evaluate(INSPECT_JS)
    problems = list(errors)
    if math["total"]:
        if math["script"] is None or not math["script"].startswith(checker.base):
            problems.append(f"MathJax is loaded from {math['script']!r}, not from the site itself")
        if math["rendered"] < math["total"]:
            problems.append(f"{math['total'] - math['rendered']} of {math['total']} equations were "
                            "not typeset by MathJax")
        if math["errors"]:
            problems.append(f"{math['errors']} equation(s) show a MathJax error")
    chapter = LESSON.match(docname)
    if not info["h1"]:
        problems.append("no <h1> title")
    elif not info["title"].startswith(info["h1"]):
        problems.append(f"window title {info['title']!r} does not start with the heading {info['h1']!r}")
    if chapter and not info["h1"].startswith(f"{int(chapter.group(1))}."):
        problems.append(f"chapter heading {info['h1']!r} does not start with {int(chapter.group(1))}.")
    broken = [i["src"].replace(checker.base, "/") for i in info["images"] if not i["ok"]]
    problems += [f"image did not load: {src}" for src in broken]
    figures = sum(1 for i in info["images"] if i["ok"] and i["output"])
    if chapter and figures == 0:
        problems.append("a chapter must show at least one figure; found none")
    problems += [f"traceback in a cell output: {t[:160]!r}" for t in info["tracebacks"]]
    problems += [f"image {i['src'].replace(checker.base, '/')} has alt text {i['alt']!r}: say what "
                 "it shows (mystnb: image: alt: in the cell's metadata)"
                 for i in info["images"] if i["alt"] is None or BAD_ALT.search(i["alt"])]
    if chapter:
        problems += [f"figure {i['src'].replace(checker.base, '/')} (alt {i['alt']!r}) has no "
                     "caption: give the cell mystnb: figure: caption: and name:"
                     for i in info["images"] if i["in_output"] and not i["caption"]]
    bar_lines = []
    for number, text in enumerate(info["streams"], start=1):
        lines = text.split("\n")
        refreshes = PROGRESS_BARS.superseded(lines)
        bar_lines.append(len(lines))
        if len(refreshes) > MAX_BAR_REFRESHES:
            problems.append(f"stream output {number} ({lines[0][:40]!r}...) shows {len(refreshes)} "
                            f"progress-bar refreshes, e.g. {lines[refreshes[0]][:60]!r}")
    problems += info["wide"]
    page_file = checker.site / f"{docname}.html"
    link_problems, internal, external = checker.check_links(page_file, info["links"], set(info["ids"]))
    problems += link_problems
    if chapter:
        problems += checker.check_notebook(docname, info["links"])
    if checker.student and info["solutions"]:
        problems.append(f"student edition shows {info['solutions']} solution(s)")
    shot = shots / (docname.replace("/", "__") + ".png")
    page.screenshot(path=str(shot), full_page=True)
    return {
        "page": docname, "title": info["h1"], "problems": problems, "figures": figures,
        "images": len(info["images"]), "internal_links": internal, "external_links": external,
        "screenshot": str(shot), "seconds": round(time.perf_counter() - started, 1),
        "captions": [i["caption"] for i in info["images"] if i["caption"]],
        "largest_stream_lines": max(bar_lines, default=0),
        "equations": math["rendered"], "widest_equation_px": round(math["widest"]),
        "mathjax": math["version"],
        "nav": info["nav"],
    }


DARK_JS = """
() => {
  const luminance = rgb => {
    const [r, g, b] = rgb.match(/[\\d.]+/g).slice(0, 3).map(v => {
      v = Number(v) / 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (c && !c.startsWith('rgba(0, 0, 0, 0)') && c !== 'transparent') return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const contrast = el => {
    const a = luminance(getComputedStyle(el).color), b = luminance(background(el));
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  };
  const problems = [];
  const figures = [...document.querySelectorAll('.cell_output img, figure img')];
  for (const img of figures) {
    const style = getComputedStyle(img);
    if (style.backgroundColor !== 'rgb(255, 255, 255)' || style.filter !== 'none')
      problems.push(`figure ${img.getAttribute('src')} in dark mode: background ${style.backgroundColor}, filter ${style.filter} (wanted an undimmed white card)`);
  }
  const texts = [...document.querySelectorAll('article pre, article td, article th')]
    .filter(e => e.textContent.trim() && e.getBoundingClientRect().width > 0);
  for (const el of texts.slice(0, 200)) {
    const ratio = contrast(el);
    if (ratio < 4.5)
      problems.push(`<${el.tagName.toLowerCase()}> "${el.textContent.trim().slice(0, 40)}" has contrast ${ratio.toFixed(1)} in dark mode (needs 4.5)`);
  }
  return {theme: document.documentElement.dataset.theme, figures: figures.length,
          texts: texts.length, problems: problems.slice(0, 20)};
}
"""


def check_dark_mode(page, base: str, docname: str, shots: Path) -> dict:
    """A chapter in the theme's dark mode: figures on white cards, readable code and tables."""
    page.add_init_script("localStorage.setItem('theme', 'dark'); localStorage.setItem('mode', 'dark');")
    page.goto(f"{base}{docname}.html", wait_until="load")
    page.evaluate("document.documentElement.dataset.theme = 'dark'; document.documentElement.dataset.mode = 'dark';")
    info = page.evaluate(DARK_JS)
    problems = list(info["problems"])
    if info["theme"] != "dark":
        problems.append(f"the page did not switch to dark mode (data-theme={info['theme']!r})")
    shot = shots / (docname.replace("/", "__") + "__dark.png")
    page.screenshot(path=str(shot), full_page=True)
    if not shot.is_file():
        problems.append(f"no dark-mode screenshot at {shot}")
    return {"page": f"{docname} in dark mode", "problems": problems, "screenshot": str(shot),
            "results": [f"{info['figures']} figure(s), {info['texts']} code/table element(s) checked"]}


def check_search(page, base: str) -> dict:
    page.goto(f"{base}search.html?q={SEARCH_WORD}", wait_until="load")
    try:
        page.wait_for_selector("ul.search li", timeout=30_000)
    except Exception:  # playwright's TimeoutError: no result appeared
        return {"page": f"search for {SEARCH_WORD!r}", "problems": ["no search result"]}
    results = page.eval_on_selector_all("ul.search li a", "els => els.map(e => e.textContent.trim())")
    return {"page": f"search for {SEARCH_WORD!r}", "problems": [] if results else ["no search result"],
            "results": results[:10]}


# Run in the playground page: every comparison with what PyTorch and tiktoken computed.
PLAYGROUND_JS = """async (check) => {
  const pg = window.coursePlayground;
  await pg.ready;
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const tokens = [];
  check.strings.forEach((text, i) => {
    const got = pg.encode(text);
    if (!same(got, check.ids[i])) tokens.push({i, text: text.slice(0, 40),
                                               got: got.slice(0, 12), want: check.ids[i].slice(0, 12)});
  });
  const maxDiff = (got, want) => got.reduce((m, x, i) => Math.max(m, Math.abs(x - want[i])), 0);
  const logits = check.prompt_ids.map((ids, p) => maxDiff(pg.logits(ids), check.logits[p]));
  const greedy = check.prompt_ids.map((ids, p) => {
    const got = pg.greedy(ids, check.greedy_tokens), want = check.greedy[p];
    const first = got.findIndex((t, i) => t !== want[i]);
    return {equal: got.filter((t, i) => t === want[i]).length, first, got: got.slice(0, 8)};
  });
  const a = check.attention;
  const map = pg.attention(check.prompt_ids[a.prompt], a.layer, a.head);
  const attention = Math.max(...map.map((row, r) => maxDiff(row, a.weights[r])));
  // the comparison must be able to fail: one weight one int8 step off must show, be it in
  // the embedding of a prompt's last token or inside a feed-forward layer
  const model = pg.state.model, probe = check.prompt_ids[0];
  const nudge = (name, index, cols) => {
    const w = model.w[name], kept = w[index], row = index - index % cols;
    w[index] = kept + Math.max(...w.subarray(row, row + cols).map(Math.abs)) / 127;
    const moved = Math.max(...check.prompt_ids.map((ids, p) => maxDiff(pg.logits(ids), check.logits[p])));
    w[index] = kept;
    return moved;
  };
  const perturbed = Math.min(nudge('tok_emb.weight', probe[probe.length - 1] * model.D, model.D),
                             nudge('blocks.2.ff.layers.0.weight', 5000, model.D));
  // speed: greedy tokens with the KV cache, after a prompt of a few tokens
  const n = 128;
  const started = performance.now();
  pg.greedy(probe, n);
  const seconds = (performance.now() - started) / 1000;
  return {tokens, logits, greedy, attention, perturbed, tokensPerSecond: n / seconds,
          strings: check.strings.length};
}"""

# Every control of the playground has a name a screen reader can say, and the heat map has a
# text alternative and takes the keyboard focus.
PLAYGROUND_A11Y_JS = """() => {
  const root = document.querySelector('article') || document.body;
  const unnamed = [];
  for (const el of root.querySelectorAll('input, select, textarea, button')) {
    const name = (el.labels && el.labels.length) || el.getAttribute('aria-label') ||
                 el.textContent.trim();
    if (!name) unnamed.push(el.id || el.tagName);
  }
  const map = document.getElementById('pg-heatmap');
  return {unnamed, heatmapLabel: map ? map.getAttribute('aria-label') : null,
          heatmapFocusable: map ? map.tabIndex >= 0 : false,
          transfer: performance.getEntriesByType('resource')
            .concat(performance.getEntriesByType('navigation'))
            .reduce((sum, e) => sum + (e.transferSize || 0), 0),
          firstToken: window.coursePlayground.state && window.coursePlayground.state.firstTokenAt,
          ready: window.coursePlayground.state && window.coursePlayground.state.readyAt,
          started: window.coursePlayground.state && window.coursePlayground.state.startedAt,
          downloaded: window.coursePlayground.state && (window.coursePlayground.state.startedAt +
                                                        window.coursePlayground.state.downloadMs),
          fromCache: window.coursePlayground.state && window.coursePlayground.state.fromCache,
          output: (document.getElementById('pg-output') || {}).textContent || ''};
}"""


def read_sha256sums(folder: Path) -> dict[str, str]:
    return {line[66:]: line[:64] for line in (folder / "SHA256SUMS").read_text().splitlines()}


def check_playground(new_context, base: str, site: Path, shots: Path) -> dict:
    """The playground's model against tiktoken and PyTorch, its speed, its weight of bytes."""
    import hashlib
    from array import array

    name = f"the playground ({PLAYGROUND})"
    folder = site / "_static" / "playground"
    header_file = folder / "course-gpt.json"
    if not header_file.is_file():
        return {"page": name, "problems": [f"{header_file} is missing: the site build writes it "
                                           "(tools/playground.py)"]}
    header = json.loads(header_file.read_text())
    check = json.loads((folder / "check.json").read_text())
    logits = array("f")
    logits.frombytes((folder / check["logits_file"]).read_bytes())
    vocab = header["config"]["vocab_size"]
    check["logits"] = [logits[i * vocab:(i + 1) * vocab].tolist()
                       for i in range(len(check["prompts"]))]
    problems, detail = [], []
    sums = read_sha256sums(ROOT / "checkpoints" / "course-gpt")
    if header["source"]["sha256"] != sums.get("model.safetensors"):
        problems.append("the weight header's source SHA-256 differs from the model card's "
                        "SHA256SUMS: rebuild the site")
    weights = folder / header["weights"]["file"]
    if not weights.is_file() or hashlib.sha256(weights.read_bytes()).hexdigest() != header["weights"]["sha256"]:
        problems.append(f"{weights.name} is missing or does not match its header's SHA-256")
    ranks = folder / header["tokenizer"]["file"]
    if not ranks.is_file() or hashlib.sha256(ranks.read_bytes()).hexdigest() != sums.get(ranks.name):
        problems.append(f"{ranks.name} is missing or differs from the checkpoint's")
    if len(check["strings"]) < 200 or len(check["prompts"]) < 10:
        problems.append(f"check.json holds {len(check['strings'])} strings and "
                        f"{len(check['prompts'])} prompts (want at least 200 and 10)")

    url = f"{base}{PLAYGROUND}.html"
    # 1. a cold browser, driven by the keyboard: time from navigation to the first token
    context = new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"JavaScript error: {exc}"))
    page.goto(url, wait_until="commit")
    try:  # ready, or a message saying why not
        page.wait_for_function("document.querySelector('#pg-generate:not([disabled])') || "
                               "/could not/.test((document.getElementById('pg-status') || "
                               "{}).textContent)", timeout=60_000)
    except Exception:  # playwright's TimeoutError
        pass
    if not page.query_selector("#pg-generate:not([disabled])"):
        status = page.inner_text("#pg-status") if page.query_selector("#pg-status") else "?"
        context.close()
        return {"page": name, "problems": problems + errors + [
            f"the model did not load; the page says: {status!r}"]}
    page.focus("#pg-prompt")
    page.keyboard.press("End")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("window.coursePlayground.state.lastRun", timeout=120_000)
    cold = page.evaluate(PLAYGROUND_A11Y_JS)
    first_token_s = cold["firstToken"] / 1000
    if first_token_s > PLAYGROUND_FIRST_TOKEN_S:
        problems.append(f"first token {first_token_s:.2f} s after navigation "
                        f"(want at most {PLAYGROUND_FIRST_TOKEN_S} s)")
    if len(cold["output"]) <= len("KING HENRY.\n"):
        problems.append("Ctrl+Enter in the prompt generated no text")
    problems += [f"control {u} has no label" for u in cold["unnamed"]]
    if not cold["heatmapLabel"] or "heat map of layer" not in cold["heatmapLabel"]:
        problems.append(f"the heat map's text alternative is {cold['heatmapLabel']!r}")
    if not cold["heatmapFocusable"]:
        problems.append("the heat map cannot take the keyboard focus")
    page.screenshot(path=str(shots / "book__playground__generated.png"), full_page=True)
    page.focus("#pg-heatmap")
    before = page.inner_text("#pg-cell")
    page.keyboard.press("ArrowDown")
    if page.inner_text("#pg-cell") == before:
        problems.append("the arrow keys do not move the heat map's outlined square")

    # 2. the model against PyTorch and tiktoken, in the same page
    result = page.evaluate(PLAYGROUND_JS, check)
    tolerance = check["tolerance"]
    for bad in result["tokens"][:5]:
        problems.append(f"token ids of string {bad['i']} {bad['text']!r}: page {bad['got']}, "
                        f"tiktoken {bad['want']}")
    if result["tokens"]:
        problems.append(f"{len(result['tokens'])} of {result['strings']} strings tokenised differently")
    worst = max(result["logits"])
    if worst > tolerance["logits"]:
        problems.append(f"logits differ from PyTorch's by up to {worst:.3g} "
                        f"(tolerance {tolerance['logits']})")
    if result["perturbed"] <= tolerance["logits"]:
        problems.append(f"a weight one int8 step off moved the logits by only "
                        f"{result['perturbed']:.3g}: the comparison could not see it")
    for p, g in enumerate(result["greedy"]):
        if g["first"] >= 0:
            problems.append(f"greedy tokens of prompt {p} ({check['prompts'][p]!r}) part from "
                            f"PyTorch's at token {g['first']}: {g['got']}")
    if result["attention"] > tolerance["attention"]:
        problems.append(f"attention weights differ from PyTorch's by {result['attention']:.3g}")
    cost = header["int8_cost"]
    context.close()

    # 3. a second visit: the weights come from the browser's cache, not the network
    context = new_context(viewport={"width": 1280, "height": 900})
    fetched: list[str] = []
    context.on("request", lambda r: fetched.append(r.url) if r.url.endswith(".bin") else None)
    page = context.new_page()
    page.goto(url, wait_until="load")
    page.wait_for_function("window.coursePlayground.state", timeout=60_000)
    page.goto(url, wait_until="load")
    page.wait_for_function("window.coursePlayground.state", timeout=60_000)
    warm = page.evaluate(PLAYGROUND_A11Y_JS)
    if len(fetched) != 1 or not warm["fromCache"]:
        problems.append(f"two visits fetched the weights {len(fetched)} time(s) "
                        f"(second from the cache: {warm['fromCache']})")
    context.close()

    # 4. a phone's width: nothing sticks out, nothing scrolls sideways
    context = new_context(viewport={"width": PHONE_WIDTH, "height": 800}, is_mobile=True)
    page = context.new_page()
    page.goto(url, wait_until="load")
    page.wait_for_function("window.coursePlayground.state", timeout=60_000)
    page.wait_for_selector("#pg-generate:not([disabled])", timeout=60_000)
    phone = page.evaluate(INSPECT_JS)
    problems += [f"at {PHONE_WIDTH} px: {w}" for w in phone["wide"]]
    page.screenshot(path=str(shots / "book__playground__phone.png"), full_page=True)
    context.close()
    problems += errors

    detail = [
        f"{result['strings'] - len(result['tokens'])}/{result['strings']} strings tokenised as tiktoken",
        f"logits vs PyTorch max |diff| {worst:.2g} (tolerance {tolerance['logits']:g}; "
        f"one weight one int8 step off moves them by at least {result['perturbed']:.2g})",
        f"greedy {sum(g['equal'] for g in result['greedy'])}/"
        f"{check['greedy_tokens'] * len(check['prompts'])} tokens equal "
        f"(smallest top-2 margin {check['smallest_greedy_margin']:.2g})",
        f"attention max |diff| {result['attention']:.2g}",
        f"int8 vs float32 weights: logits {cost['max_logit_error_all_positions']:.3g}, "
        f"greedy {cost['greedy_tokens_equal_to_float32']}/{cost['greedy_tokens_compared']} equal",
        f"{result['tokensPerSecond']:.0f} tokens/s (load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs)",
        f"first token {first_token_s:.2f} s after navigation (script started at "
        f"{cold['started'] / 1000:.2f} s, weights in at {cold['downloaded'] / 1000:.2f} s, "
        f"model ready at {cold['ready'] / 1000:.2f} s)",
        f"transferred {cold['transfer'] / 1e6:.2f} MB cold (weights {header['weights']['bytes'] / 1e6:.2f} MB), "
        f"{warm['transfer'] / 1e6:.2f} MB on a second visit",
    ]
    return {"page": name, "problems": problems, "detail": detail,
            "screenshot": str(shots / "book__playground__generated.png")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", nargs="?", default="_build/html", type=Path)
    parser.add_argument("--screenshots", type=Path, help="folder for the screenshots")
    parser.add_argument("--student", action="store_true", help="the site is the student edition")
    parser.add_argument("--toc", type=Path, default=ROOT / "_toc.yml")
    args = parser.parse_args()
    site = args.site.resolve()
    if not (site / "index.html").is_file():
        _missing(f"no built site in {site}: run `make book` (or `make book-student`) first")
    shots = (args.screenshots or site.parent / "screenshots").resolve()
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    chromium = find_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed: `make check-site` installs it from requirements-site.txt")

    server, base = serve(site)
    results = []
    pages = toc_pages(args.toc)
    started = time.perf_counter()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
        blocked: set[str] = set()
        off_site: dict[str, str] = {}  # URL -> the page that asked for it

        def offline(route):
            if route.request.url.startswith(base):
                route.continue_()
            else:
                blocked.add(urllib.parse.urlsplit(route.request.url).netloc)
                frame = route.request.frame if route.request.resource_type == "document" else None
                off_site.setdefault(route.request.url, frame.url if frame else
                                    route.request.headers.get("referer", "?"))
                route.abort()

        def new_context(**options):
            made = browser.new_context(**options)
            made.route("**/*", offline)
            return made

        context = new_context(viewport={"width": 1280, "height": 900})
        checker = Checker(site, base, args.student)
        queue, seen = list(pages), set()
        while queue:
            docname = queue.pop(0)
            if docname in seen:
                continue
            seen.add(docname)
            page = context.new_page()
            result = check_page(page, checker, docname, shots)
            page.close()
            results.append(result)
            # pages the navigation links to but _toc.yml does not list are checked too
            for url in result.pop("nav", []):
                target = checker.local_file(url.split("#")[0])
                if target and target.suffix == ".html":
                    extra = target.relative_to(site).with_suffix("").as_posix()
                    if extra not in seen and extra not in queue:
                        queue.append(extra)
        chapter_math = [r for r in results if LESSON.match(r["page"]) and r.get("equations")]
        results.append({"page": "equations", "problems": [] if any(
            r["widest_equation_px"] > 0 for r in chapter_math) else [
            "no chapter shows an equation typeset by MathJax"],
            "detail": [f"{r['page']}: {r['equations']} equation(s), MathJax {r['mathjax']}"
                       for r in chapter_math][:3]})
        page = context.new_page()
        results.append(check_search(page, base))
        chapters = [d for d in pages if LESSON.match(d)]
        if chapters:
            page = context.new_page()
            results.append(check_dark_mode(page, base, chapters[0], shots))
        else:
            results.append({"page": "dark mode", "problems": ["no chapter in the table of contents"]})
        if PLAYGROUND in pages:
            results.append(check_playground(new_context, base, site, shots))
        else:
            results.append({"page": "the playground", "problems": [
                f"{PLAYGROUND} is not in the table of contents"]})
        results.append({"page": "off-site requests", "detail": [], "problems": [
            f"request to {url} (from {who.replace(base, '/')}): the site must not load anything "
            "from another website" for url, who in sorted(off_site.items())]})
        browser.close()
    server.shutdown()

    failed = [r for r in results if r["problems"]]
    for r in results:
        mark = "FAIL" if r["problems"] else "ok  "
        detail = (f"{r.get('title', '')!r}: {r['figures']} figure(s), {r['images']} image(s), "
                  f"{r['internal_links']} internal / {r['external_links']} external links, "
                  f"largest stream output {r['largest_stream_lines']} lines"
                  if "figures" in r else "; ".join(r["detail"]) if "detail" in r
                  else f"{len(r.get('results', []))} result(s): {r.get('results', [])[:3]}")
        print(f"{mark} {r['page']}  {detail}")
        for problem in r["problems"]:
            print(f"       - {problem}")
    print(f"site: {site}; screenshots: {shots}; blocked requests to other hosts: {sorted(blocked) or 'none'}; "
          f"{time.perf_counter() - started:.0f} s")
    report = shots.parent / ("site-check-student.json" if args.student else "site-check.json")
    report.write_text(json.dumps({"site": str(site), "results": results, "blocked_hosts": sorted(blocked)}, indent=1))
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
