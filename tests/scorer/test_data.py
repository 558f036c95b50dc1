"""Readers, cleaning and the research split."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorer.data import (
    LABEL2ID,
    LabelledSet,
    allagree_rows,
    detect_format,
    phrasebank_split,
    read_any,
    read_csv,
    read_phrasebank,
    read_tfns,
    research_split,
)
from scorer.exceptions import ScorerError


def write_phrasebank(path: Path, lines: list[str]) -> Path:
    path.write_bytes("\r\n".join(lines).encode("latin-1") + b"\r\n")
    return path


def test_phrasebank_latin1_crlf_and_at_inside(tmp_path: Path) -> None:
    path = write_phrasebank(tmp_path / "pb.txt", [
        "Nokia Oyj 's profit rose 5 % to EUR 10 mn .@positive",
        "Contact: investor@company.fi for details .@neutral",
        "Sales in Espoo fell , says the caf\u00e9 owner .@negative",
    ])
    data = read_phrasebank(path)
    assert data.texts[1] == "Contact: investor@company.fi for details ."
    assert data.texts[2].endswith("caf\u00e9 owner .")
    assert data.labels == [LABEL2ID["positive"], LABEL2ID["neutral"], LABEL2ID["negative"]]
    assert not any("\r" in t for t in data.texts)


def test_duplicates_dropped_and_conflicts_removed(tmp_path: Path) -> None:
    path = write_phrasebank(tmp_path / "pb.txt", [
        "A .@neutral", "B .@positive", "A .@neutral", "C .@negative", "B .@neutral", "D .@neutral",
    ])
    data = read_phrasebank(path)
    assert data.texts == ["A .", "C .", "D ."]  # B carries two labels: dropped entirely
    assert data.labels == [1, 0, 1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("A sentence .@bullish\r\n", "unknown label 'bullish'"),
        ("no label separator here\r\n", "has no '@label'"),
    ],
)
def test_bad_phrasebank_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="latin-1")
    with pytest.raises(ScorerError, match=message):
        read_phrasebank(path)


def test_missing_file_is_a_scorer_error(tmp_path: Path) -> None:
    with pytest.raises(ScorerError, match="not found"):
        read_any(tmp_path / "nope.csv")


def test_csv_reader_with_label_map(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"Up, up, up",bullish\nDown,Bearish\nFlat,neutral\n')
    data = read_csv(path, label_map={"bullish": "positive", "bearish": "negative"})
    assert data.texts == ["Up, up, up", "Down", "Flat"]
    assert data.labels == [2, 0, 1]
    with pytest.raises(ScorerError, match="unknown label 'bullish'"):
        read_csv(path)


def test_csv_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("sentence,label\nhello,positive\n")
    with pytest.raises(ScorerError, match="missing column"):
        read_csv(path)


def test_tfns_label_mapping_and_detection(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,label\n$X drops,0\n$Y soars,1\n$Z flat,2\n")
    assert detect_format(path) == "tfns"
    assert read_tfns(path).labels == [0, 2, 1]
    assert read_any(path).labels == [0, 2, 1]


def test_format_detection(tmp_path: Path) -> None:
    pb = write_phrasebank(tmp_path / "pb.txt", ["x .@neutral"])
    csv = tmp_path / "c.csv"
    csv.write_text("text,label\nx,neutral\n")
    junk = tmp_path / "j.txt"
    junk.write_text("just some words\n")
    assert detect_format(pb) == "phrasebank"
    assert detect_format(csv) == "csv"
    with pytest.raises(ScorerError, match="cannot tell its format"):
        detect_format(junk)


def test_research_split_is_deterministic() -> None:
    data = LabelledSet([f"s{i}" for i in range(100)], [i % 3 for i in range(100)])
    a, b = research_split(data), research_split(data)
    assert (len(a.train), len(a.validation), len(a.test)) == (72, 8, 20)
    assert a.test.texts == b.test.texts and a.train.texts == b.train.texts
    assert not set(a.test.texts) & (set(a.train.texts) | set(a.validation.texts))


@pytest.mark.data
def test_phrasebank_research_split_sizes(shared_data: Path) -> None:
    split = phrasebank_split(shared_data)
    # 4846 lines - 6 duplicate lines - 2 conflicting sentences (4 rows) = 4836
    assert (len(split.train), len(split.validation), len(split.test)) == (3481, 387, 968)
    assert split.test.texts[0].startswith("Honkarakenne 's customer in this project")
    assert split.train.texts[0].startswith("Kesko www.kesko.fi is a Finnish retail")
    assert len(allagree_rows(shared_data, split.test)) == 456
