"""Course plumbing that is not part of the curriculum: paths, the active profile,
the device, verified access to the offline assets, progress bars and chapter timing.

Hand-written (unlike the chapter modules, which tools/export.py generates). Keep it short.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# In a clone of the course the package sits beside lessons/; installed from a wheel it does not.
IN_CHECKOUT = (ROOT / "lessons").is_dir() and (ROOT / "pyproject.toml").is_file()


def _default_data() -> Path:
    """data/ of the clone; elsewhere data/ in the working folder, or the user's cache when the
    working folder is read-only. LLMS_DATA overrides both."""
    if IN_CHECKOUT:
        return ROOT / "data"
    here = Path.cwd() / "data"
    writable = os.access(here if here.exists() else Path.cwd(), os.W_OK)
    return here if writable else Path.home() / ".cache" / "llmscratch" / "data"


DATA = Path(os.environ.get("LLMS_DATA") or _default_data())
CHECKPOINTS = ROOT / "checkpoints"
MANIFEST = json.loads((Path(__file__).with_name("assets.json")).read_text())
FETCH_HINT = ("run `make fetch` from the repository root" if IN_CHECKOUT
              else "run `python -m llmscratch.fetch`")

# tiktoken looks for its rank files in this folder before it tries the internet;
# llmscratch/fetch.py seeds it from the GPT-2 ranks shipped inside openai-whisper.
TIKTOKEN_CACHE = DATA / "tiktoken-cache"
if not os.environ.get("TIKTOKEN_CACHE_DIR"):
    os.environ["TIKTOKEN_CACHE_DIR"] = str(TIKTOKEN_CACHE)

PROFILES = ("quick", "full")
PROFILE = os.environ.get("LLMS_PROFILE", "quick")
if PROFILE not in PROFILES:
    raise ValueError(f"LLMS_PROFILE={PROFILE!r} is not a profile; use one of {PROFILES}")


def pick(quick, full):
    """The value for the active profile: `pick(quick=200, full=5000)`."""
    return quick if PROFILE == "quick" else full


def device(prefer: str | None = None) -> str:
    """'cuda' or 'mps' when present and LLMS_DEVICE does not say otherwise, else 'cpu'."""
    import torch

    choice = prefer or os.environ.get("LLMS_DEVICE", "auto")
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` under a temporary name beside `path`, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class AssetError(RuntimeError):
    """An offline asset is missing or does not match its recorded checksum."""


def expected_files(name: str) -> dict[str, str]:
    """Relative path under data/<name>/ → SHA-256, for every file an asset provides."""
    entry = MANIFEST[name]
    files = dict(entry["files"])
    for inner in entry.get("unpack", {}).values():
        files.update(inner)
    return files


def asset_sources(name: str) -> list[dict]:
    """The pinned packages an asset comes from: one, or the parts whose files are
    concatenated into one file (an asset with "concatenate", in that order)."""
    entry = MANIFEST[name]
    if "concatenate" in entry:
        return list(entry["concatenate"])
    return [{key: entry[key] for key in ("package", "version", "dist")}]


def profile_assets(profile: str | None = None) -> list[str]:
    """The assets a profile uses: all of them, but the quick profile leaves out
    those marked `"profile": "full"` in assets.json (large files it never opens)."""
    profile = profile or PROFILE
    return [name for name, entry in MANIFEST.items()
            if profile == "full" or entry.get("profile") != "full"]


def asset_path(name: str, member: str, verify: bool = True) -> Path:
    """Path of one file of an asset, checked against its SHA-256 in assets.json."""
    if name not in MANIFEST:
        raise KeyError(f"unknown asset {name!r}; known: {sorted(MANIFEST)}")
    files = expected_files(name)
    if member not in files:
        raise KeyError(f"asset {name!r} has no file {member!r}; it has {sorted(files)[:5]}...")
    path = DATA / name / member
    if not path.exists():
        only_full = (f"{name} is used in the full profile only: set "
                     "LLMS_PROFILE=full and " if name not in profile_assets() else "")
        raise AssetError(f"missing asset file {path}; {only_full}{FETCH_HINT}")
    if verify and _verified(path) != files[member]:
        raise AssetError(
            f"{path} does not match its recorded SHA-256 (corrupt or altered); "
            f"delete it and {FETCH_HINT}"
        )
    return path


_VERIFIED: dict[tuple[str, float, int], str] = {}


def _verified(path: Path) -> str:
    """SHA-256 of a file, remembered per (path, mtime, size) so repeated loads stay fast."""
    stat = path.stat()
    key = (str(path), stat.st_mtime, stat.st_size)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_file(path)
    return _VERIFIED[key]


def asset_files(name: str, suffix: str = "") -> list[Path]:
    """All verified files of an asset whose names end with `suffix`, sorted."""
    return [asset_path(name, m) for m in sorted(expected_files(name)) if m.endswith(suffix)]


def progress(iterable=None, **kwargs):
    """A plain-text tqdm bar (no widgets, so it renders in the static site too)."""
    from tqdm import tqdm

    kwargs.setdefault("file", sys.stdout)
    kwargs.setdefault("ncols", 80)  # the width the page shows
    kwargs.setdefault("mininterval", 2.0)
    kwargs.setdefault("ascii", True)
    return tqdm(iterable, **kwargs)


REPORT = DATA / "report"


def record_stage(stage: int, title: str, *, artifacts: dict, headline: dict,
                 produced_by: str, consumed_by: str) -> Path:
    """Leave this stage's section of the report card (lessons/08-report-card.md).

    `artifacts` maps a label to a file the stage wrote or used (each gets its SHA-256);
    `headline` maps a label to an already formatted figure, interval included.
    """
    files = {}
    for label, path in artifacts.items():
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"stage {stage}: artifact {label!r} at {path} does not exist")
        files[label] = {"path": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
                        "sha256": sha256_file(path), "bytes": path.stat().st_size}
    record = {"stage": stage, "title": title, "profile": PROFILE, "artifacts": files,
              "headline": {k: str(v) for k, v in headline.items()},
              "produced_by": produced_by, "consumed_by": consumed_by}
    return write_text_atomic(REPORT / f"stage{stage}.json", json.dumps(record, indent=2))


def read_stage(stage: int) -> dict:
    """The record chapter `stage` left with `record_stage`; a clear error if it has not run."""
    path = REPORT / f"stage{stage}.json"
    if not path.exists():
        lessons = sorted((ROOT / "lessons").glob(f"{stage:02d}-*.md"))
        where = f" ({lessons[0].relative_to(ROOT)})" if lessons else ""
        raise FileNotFoundError(
            f"stage {stage} has no record at {path}: run chapter {stage}{where} to its end "
            "first (its last cells write the record), then this page again")
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("stage") != stage:
        raise ValueError(f"{path} holds stage {record.get('stage')!r}, not {stage}: "
                         f"rerun chapter {stage} to rewrite it")
    return record


def artifact_file(entry: dict) -> Path:
    """Where a recorded artifact lies (paths inside the repository are stored relative to it)."""
    path = Path(entry["path"])
    return path if path.is_absolute() else ROOT / path


def changed_artifacts(record: dict) -> list[str]:
    """Labels of a record's artifacts that are missing or no longer match their SHA-256."""
    return [label for label, entry in record["artifacts"].items()
            if not artifact_file(entry).exists()
            or sha256_file(artifact_file(entry)) != entry["sha256"]]


class Stopwatch:
    """Measures a chapter's wall time from its first cell to its last."""

    def __init__(self, chapter: str, budget_s: float):
        self.chapter, self.budget_s, self.start = chapter, budget_s, time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def report(self) -> str:
        return (
            f"{self.chapter} ran in {self.elapsed():.1f} s "
            f"({PROFILE} profile; quick-profile budget {self.budget_s:.0f} s)"
        )
