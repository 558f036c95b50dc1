"""Training writes a loadable folder; `finsent eval` prints one JSON object; bad input exits 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scorer.backends import load_backend
from scorer.evaluate import metrics
from tests.fixtures.model import NEGATIVE, NEUTRAL, POSITIVE


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "finsent.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def phrasebank_fixture(tmp_path: Path) -> Path:
    """A PhraseBank-format file (latin-1, CRLF, '@' inside a sentence, a duplicate)."""
    lines = [f"{t}@negative" for t in NEGATIVE] + [f"{t}@neutral" for t in NEUTRAL]
    lines += [f"{t}@positive" for t in POSITIVE]
    lines += ["Mail ir@caf\u00e9-group.fi for the annual report .@neutral", lines[0]]
    path = tmp_path / "Sentences_fixture.txt"
    path.write_bytes("\r\n".join(lines).encode("latin-1") + b"\r\n")
    return path


def test_metrics_values() -> None:
    m = metrics([0, 1, 2, 2], [0, 1, 1, 2])
    assert m["n"] == 4 and m["accuracy"] == 0.75
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert m["f1"]["negative"] == 1.0 and m["f1"]["positive"] == pytest.approx(0.6667)


def test_tiny_training_writes_a_loadable_folder(tiny_model_dir: Path) -> None:
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    assert config["label2id"] == {"negative": 0, "neutral": 1, "positive": 2}
    from safetensors import safe_open

    with safe_open(tiny_model_dir / "model.safetensors", "pt") as f:
        key = next(iter(f.keys()))
        assert str(f.get_tensor(key).dtype) == "torch.float16"
    meta = json.loads((tiny_model_dir / "metrics.json").read_text())
    assert meta["recipe"]["max_length"] == 32 and meta["training"]["steps"] == 6
    assert meta["training"]["history"] and meta["validation_at_selection"]["n"] == 12
    backend = load_backend(tiny_model_dir, backend="torch", device="cpu")
    out = backend.predict(["Profit rose.", "Loss widened."])
    assert len(out) == 2 and all(0.0 <= s.p_neutral <= 1.0 for s in out)


def test_eval_cli_prints_one_json_object(tiny_model_dir: Path, phrasebank_fixture: Path) -> None:
    proc = run_cli("eval", "--data", str(phrasebank_fixture), "--model", str(tiny_model_dir),
                   "--backend", "torch")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # exactly one JSON document
    assert result["n"] == 37  # 36 + 1 new sentence; the repeated line is dropped
    assert sum(map(sum, result["confusion_matrix"])) == 37
    assert set(result["f1"]) == {"negative", "neutral", "positive"}
    assert 0.0 <= result["accuracy"] <= 1.0 and result["model_version"].endswith(":torch")

    proc = run_cli("eval", "--data", str(phrasebank_fixture), "--split", "test", "--model",
                   str(tiny_model_dir), "--backend", "torch")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n"] == 8  # ceil(0.2 * 37)


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["--format", "csv"], "text,label\nhello,bullish\n", "unknown label 'bullish'"),
        ([], "sentence,polarity\nhello,positive\n", "cannot tell its format"),
        (["--format", "csv"], "sentence,polarity\nhello,positive\n", "missing column"),
        (["--split", "train"], "text,label\nhello,positive\n", "--split must be"),
        (["--backend", "tensorrt"], "text,label\nhello,positive\n", "invalid backend"),
    ],
)
def test_bad_eval_input_exits_2_with_one_line(
    tiny_model_dir: Path, tmp_path: Path, args: list[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    proc = run_cli("eval", "--data", str(path), "--model", str(tiny_model_dir), *args)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("finsent: error:") and message in lines[0]
    assert proc.stdout == ""


def test_score_with_missing_model_exits_2(tmp_path: Path) -> None:
    proc = run_cli("score", "--model", str(tmp_path / "absent"), "Profit rose.")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "FINSENT_MODEL" in lines[0]
