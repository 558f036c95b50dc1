"""Labelled data for training and evaluation: PhraseBank, plain CSV and the tfns tweets.

Every reader returns a ``LabelledSet`` (texts + label ids in the model's order), cleaned the
same way: exact duplicates dropped, sentences carrying conflicting labels dropped entirely
(we cannot know which annotation is right). The PhraseBank split is the research split used by
FinBERT (``scripts/datasets.py``) so that numbers compare with the literature.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from scorer.exceptions import ScorerError

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
LABEL2ID: dict[str, int] = {name: i for i, name in enumerate(LABELS)}
TFNS_LABELS: dict[str, str] = {"0": "negative", "1": "positive", "2": "neutral"}
"""tfns: 0 bearish, 1 bullish, 2 neutral."""

DataFormat = Literal["phrasebank", "csv", "tfns"]
AGREEMENT_LEVELS: tuple[str, ...] = ("50Agree", "66Agree", "75Agree", "AllAgree")


@dataclass(frozen=True)
class LabelledSet:
    """Parallel lists of texts and label ids (0 negative, 1 neutral, 2 positive)."""

    texts: list[str]
    labels: list[int]
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Iterable[int], source: str | None = None) -> LabelledSet:
        idx = list(indices)
        return LabelledSet(
            [self.texts[i] for i in idx], [self.labels[i] for i in idx], source or self.source
        )

    def __add__(self, other: LabelledSet) -> LabelledSet:
        return LabelledSet(
            self.texts + other.texts, self.labels + other.labels, f"{self.source}+{other.source}"
        )


@dataclass(frozen=True)
class Split:
    train: LabelledSet
    validation: LabelledSet
    test: LabelledSet


def clean(pairs: Iterable[tuple[str, str]], source: str) -> LabelledSet:
    """Drops exact duplicates and every copy of a sentence seen with two labels; keeps file order.

    ``pairs`` are (text, label name); an unknown label name raises ``ScorerError``.
    """
    seen: dict[str, set[int]] = {}
    order: list[str] = []
    for line_no, (text, name) in enumerate(pairs, start=1):
        label = LABEL2ID.get(name.strip().lower())
        if label is None:
            raise ScorerError(
                f"{source}: unknown label {name!r} on row {line_no}; "
                f"expected one of {', '.join(LABELS)} (or pass a label map)"
            )
        text = text.strip()
        if not text:
            continue
        if text not in seen:
            seen[text] = set()
            order.append(text)
        seen[text].add(label)
    kept = [t for t in order if len(seen[t]) == 1]
    return LabelledSet(kept, [next(iter(seen[t])) for t in kept], source)


def _read_text(path: Path, encoding: str) -> str:
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError as e:
        raise ScorerError(f"data file not found: {path}") from e
    except IsADirectoryError as e:
        raise ScorerError(f"expected a data file, got a folder: {path}") from e
    except UnicodeDecodeError as e:
        raise ScorerError(
            f"{path}: not valid {encoding} text ({e.reason} at byte {e.start})"
        ) from e


def read_phrasebank(path: Path) -> LabelledSet:
    """``sentence@label`` lines, latin-1, CRLF; split on the LAST ``@`` (sentences may hold one)."""
    pairs: list[tuple[str, str]] = []
    for line_no, line in enumerate(_read_text(path, "latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        if "@" not in line:
            raise ScorerError(f"{path}: line {line_no} has no '@label' ending: {line[:60]!r}")
        text, label = line.rsplit("@", 1)
        pairs.append((text, label))
    return clean(pairs, path.name)


def read_csv(
    path: Path, label_map: Mapping[str, str] | None = None, source: str | None = None
) -> LabelledSet:
    """A ``text,label`` CSV (UTF-8, header row); ``label_map`` renames labels (bullish->...)."""
    mapping = {k.strip().lower(): v for k, v in (label_map or {}).items()}
    content = _read_text(path, "utf-8-sig")
    reader = csv.DictReader(content.splitlines())
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    missing = [c for c in ("text", "label") if c not in fields]
    if missing:
        raise ScorerError(
            f"{path}: missing column(s) {', '.join(missing)}; expected a header row 'text,label' "
            f"(found: {', '.join(fields) or 'nothing'})"
        )
    reader.fieldnames = fields
    pairs: list[tuple[str, str]] = []
    for row in reader:
        text, label = row.get("text") or "", (row.get("label") or "").strip()
        pairs.append((text, mapping.get(label.lower(), label)))
    return clean(pairs, source or path.name)


def read_tfns(path: Path) -> LabelledSet:
    """twitter-financial-news-sentiment CSV: 0 bearish, 1 bullish, 2 neutral."""
    return read_csv(path, label_map=TFNS_LABELS, source=f"tfns/{path.name}")


def detect_format(path: Path) -> DataFormat:
    """PhraseBank: lines ending in ``@label``; tfns: a CSV with numeric labels; else csv."""
    head = _read_text(path, "latin-1")[:4096].splitlines()
    first = next((line for line in head if line.strip()), "")
    if "@" in first and first.rsplit("@", 1)[1].strip().lower() in LABEL2ID:
        return "phrasebank"
    if first.replace(" ", "").lower().startswith("text,label"):
        rows = [line.rsplit(",", 1)[-1].strip() for line in head[1:20] if line.strip()]
        if rows and all(r in TFNS_LABELS for r in rows):
            return "tfns"
        return "csv"
    raise ScorerError(
        f"{path}: cannot tell its format: expected PhraseBank 'sentence@label' lines or a CSV "
        "with a 'text,label' header (or pass --format)"
    )


def read_any(
    path: Path, fmt: DataFormat | None = None, label_map: Mapping[str, str] | None = None
) -> LabelledSet:
    """Reads ``path`` in the given or detected format."""
    fmt = fmt or detect_format(path)
    if fmt == "phrasebank":
        return read_phrasebank(path)
    if fmt == "tfns":
        return read_tfns(path)
    if fmt == "csv":
        return read_csv(path, label_map=label_map)
    raise ScorerError(f"unknown data format {fmt!r}; use phrasebank, csv or tfns")


def research_split(data: LabelledSet, seed: int = 0) -> Split:
    """FinBERT's split: 20% test, then 10% of the rest validation; sklearn, not stratified."""
    from sklearn.model_selection import train_test_split

    idx = list(range(len(data)))
    rest, test = train_test_split(idx, test_size=0.2, random_state=seed)
    train, valid = train_test_split(rest, test_size=0.1, random_state=seed)
    return Split(
        data.subset(train, f"{data.source}:train"),
        data.subset(valid, f"{data.source}:validation"),
        data.subset(test, f"{data.source}:test"),
    )


def phrasebank_file(data_dir: Path, level: str = "50Agree") -> Path:
    path = Path(data_dir) / "phrasebank" / f"Sentences_{level}.txt"
    if not path.is_file():
        raise ScorerError(f"PhraseBank file not found: {path} (set --data-dir / FINSENT_DATA_DIR)")
    return path


def phrasebank_split(data_dir: Path) -> Split:
    """The 50Agree research split from the shared data folder."""
    return research_split(read_phrasebank(phrasebank_file(data_dir)))


def allagree_rows(data_dir: Path, part: LabelledSet) -> LabelledSet:
    """The rows of ``part`` whose sentence all annotators agreed on (Sentences_AllAgree.txt)."""
    agreed = set(read_phrasebank(phrasebank_file(data_dir, "AllAgree")).texts)
    keep = (i for i, t in enumerate(part.texts) if t in agreed)
    return part.subset(keep, f"{part.source}:AllAgree")


def agreement_levels(data_dir: Path) -> dict[str, int]:
    """Sentence -> highest agreement level index (0 = 50%, 3 = all); for sample weighting."""
    level: dict[str, int] = {}
    for i, name in enumerate(AGREEMENT_LEVELS):
        for text in read_phrasebank(phrasebank_file(data_dir, name)).texts:
            level[text] = i
    return level


def tfns_sets(data_dir: Path) -> tuple[LabelledSet, LabelledSet]:
    """(train, valid) of the tweet set."""
    folder = Path(data_dir) / "tfns"
    return read_tfns(folder / "sent_train.csv"), read_tfns(folder / "sent_valid.csv")


def tfns_sets_if_present(data_dir: Path) -> tuple[LabelledSet, LabelledSet] | None:
    """``tfns_sets`` where the data folder has the tweet set; None where it is optional and
    absent (a user's own data folder with PhraseBank only)."""
    return tfns_sets(data_dir) if (Path(data_dir) / "tfns").is_dir() else None
