"""The report card's records: written by course.record_stage, read back, checked against disk."""
import pytest

from llmscratch import course


@pytest.fixture
def report(tmp_path, monkeypatch):
    monkeypatch.setattr(course, "REPORT", tmp_path / "report")
    return tmp_path


def test_round_trip_and_changed_artifact(report):
    vocab = report / "vocab.tiktoken"
    vocab.write_text("YQ== 0\n")
    course.record_stage(stage=1, title="Text and tokens", artifacts={"vocabulary": vocab},
                        headline={"tokens": "2,057,932"}, produced_by="lessons/01-x.md",
                        consumed_by="chapter 4")
    record = course.read_stage(1)
    assert record["artifacts"]["vocabulary"]["sha256"] == course.sha256_file(vocab)
    assert record["headline"] == {"tokens": "2,057,932"}
    assert course.changed_artifacts(record) == []
    vocab.write_text("YQ== 1\n")  # the file changed after it was recorded
    assert course.changed_artifacts(record) == ["vocabulary"]
    vocab.unlink()
    assert course.changed_artifacts(record) == ["vocabulary"]


def test_missing_stage_names_the_chapter(report):
    with pytest.raises(FileNotFoundError, match=r"run chapter 5 \(lessons/05-classification\.md\)"):
        course.read_stage(5)


def test_record_under_the_wrong_name(report):
    (report / "report").mkdir()
    (report / "report" / "stage3.json").write_text('{"stage": 4}')
    with pytest.raises(ValueError, match="rerun chapter 3"):
        course.read_stage(3)
