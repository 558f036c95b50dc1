"""The inference interface: backends agree, auto picks the declared default, errors are clear."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scorer.backends import (
    Backend,
    Sentiment,
    cpu_bf16,
    load_backend,
    resolve_backend,
)
from scorer.exceptions import ScorerError
from tests.fixtures.model import NEGATIVE, NEUTRAL, POSITIVE

SAMPLE = NEGATIVE + NEUTRAL + POSITIVE


def _check_sentiments(out: list[Sentiment], n: int) -> None:
    assert len(out) == n
    for s in out:
        total = s.p_negative + s.p_neutral + s.p_positive
        assert total == pytest.approx(1.0, abs=1e-4)
        assert s.score == pytest.approx(s.p_positive - s.p_negative, abs=1e-5)
        probs = {"negative": s.p_negative, "neutral": s.p_neutral, "positive": s.p_positive}
        assert s.label == max(probs, key=probs.__getitem__)


@pytest.mark.parametrize("bf16", ["", "avx512", "amx"])
def test_shipped_model_auto_on_cpu(
    shipped_model_dir: Path, bf16: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auto = torch-bf16 on an AMX CPU; elsewhere the CPU default ``finsent export`` declared,
    a declared torch fp32 run in bf16 where the CPU has AVX512-BF16."""
    import scorer.backends

    monkeypatch.setattr(scorer.backends, "cpu_bf16", lambda: bf16)
    meta = json.loads((shipped_model_dir / "metrics.json").read_text())
    declared = meta["serving"]["cpu_default"]
    backend = load_backend(shipped_model_dir, device="cpu")
    assert isinstance(backend, Backend)
    if bf16 == "amx" or (bf16 == "avx512" and declared == "torch"):
        assert backend.name == "torch-bf16"
    else:
        assert backend.name == declared
    assert backend.model_version == f"{meta['name']}-{meta['version']}:{backend.name}"
    assert backend.predict([]) == []


def test_bf16_flags_read_from_cpuinfo() -> None:
    flags = next((line.split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), [])
    expected = "amx" if "amx_bf16" in flags else "avx512" if "avx512_bf16" in flags else ""
    assert cpu_bf16() == expected


def test_bf16_agrees_with_fp32(shipped_model_dir: Path) -> None:
    import torch

    fp32 = load_backend(shipped_model_dir, backend="torch", device="cpu")
    bf16 = load_backend(shipped_model_dir, backend="torch-bf16", device="cpu")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16  # type: ignore[attr-defined]
    assert bf16.model_version.endswith(":torch-bf16") and bf16.name == "torch-bf16"
    a, b = fp32.predict(SAMPLE), bf16.predict(SAMPLE)
    _check_sentiments(b, len(SAMPLE))
    agree = sum(x.label == y.label for x, y in zip(a, b, strict=True)) / len(SAMPLE)
    assert agree >= 0.95
    assert max(abs(x.score - y.score) for x, y in zip(a, b, strict=True)) < 0.2


def test_shipped_model_knows_polarity(shipped_model_dir: Path) -> None:
    backend = load_backend(shipped_model_dir, device="cpu")
    texts = [
        "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period.",
        "Net sales decreased by 15 % and the company swung to a loss.",
        "The company is headquartered in Helsinki and employs 250 people.",
    ]
    out = backend.predict(texts)
    _check_sentiments(out, 3)
    assert [s.label for s in out] == ["positive", "negative", "neutral"]
    assert out[0].score > 0.5 and out[1].score < -0.5


def test_int8_agrees_with_torch(shipped_model_dir: Path) -> None:
    torch_be = load_backend(shipped_model_dir, backend="torch", device="cpu")
    int8_be = load_backend(shipped_model_dir, backend="onnx-int8", device="cpu")
    a, b = torch_be.predict(SAMPLE), int8_be.predict(SAMPLE)
    _check_sentiments(b, len(SAMPLE))
    agree = sum(x.label == y.label for x, y in zip(a, b, strict=True)) / len(SAMPLE)
    assert agree >= 0.95
    diffs = [abs(x.p_positive - y.p_positive) + abs(x.p_negative - y.p_negative)
             for x, y in zip(a, b, strict=True)]
    assert sum(diffs) / len(diffs) < 0.05
    assert max(diffs) < 0.3


def test_torch_casts_fp16_weights_to_fp32_on_cpu(shipped_model_dir: Path) -> None:
    import torch

    backend = load_backend(shipped_model_dir, backend="torch", device="cpu")
    assert next(backend.model.parameters()).dtype == torch.float32  # type: ignore[attr-defined]
    assert backend.model_version.endswith(":torch")


def test_fp32_onnx_exported_on_demand_matches_torch(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    onnx_be = load_backend(tiny_model_dir, backend="onnx", device="cpu")
    torch_be = load_backend(tiny_model_dir, backend="torch", device="cpu")
    assert list(tmp_path.glob("finsent/onnx/*/model.onnx"))
    for x, y in zip(onnx_be.predict(SAMPLE[:8]), torch_be.predict(SAMPLE[:8]), strict=True):
        assert x.label == y.label
        assert x.p_positive == pytest.approx(y.p_positive, abs=1e-3)
    assert onnx_be.model_version == "finsent-tiny-0.0-test:onnx"


def test_token_counts_truncate_at_max_length(tiny_model_dir: Path) -> None:
    backend = load_backend(tiny_model_dir, backend="torch", device="cpu", max_length=16)
    counts = backend.token_counts(["short", "word " * 100])
    assert counts[0] == 3  # [CLS] short [SEP]
    assert counts[1] == 16


def test_missing_folder_names_path_and_setting(tmp_path: Path) -> None:
    with pytest.raises(ScorerError, match="FINSENT_MODEL") as err:
        load_backend(tmp_path / "no-model")
    assert str(tmp_path / "no-model") in str(err.value)


def test_bad_backend_and_device(tiny_model_dir: Path) -> None:
    import torch

    with pytest.raises(ScorerError, match="unknown backend"):
        resolve_backend(tiny_model_dir, "tensorrt", "auto")
    with pytest.raises(ScorerError, match="CPU only"):
        resolve_backend(tiny_model_dir, "onnx-int8", "cuda")
    if torch.cuda.is_available():
        assert resolve_backend(tiny_model_dir, "auto", "auto") == ("torch", "cuda")
    else:
        with pytest.raises(ScorerError, match="CUDA is not available"):
            load_backend(tiny_model_dir, device="cuda")
        expected = "torch-bf16" if cpu_bf16() else "torch"
        assert resolve_backend(tiny_model_dir, "auto", "auto") == (expected, "cpu")


def test_auto_without_int8_falls_back_to_torch(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import scorer.backends

    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy, ignore=shutil.ignore_patterns("*.onnx"))
    meta = json.loads((copy / "metrics.json").read_text())
    meta["serving"] = {"cpu_default": "onnx-int8"}  # declared, but the file is gone
    (copy / "metrics.json").write_text(json.dumps(meta))
    assert resolve_backend(copy, "torch", "cpu") == ("torch", "cpu")
    monkeypatch.setattr(scorer.backends, "cpu_bf16", lambda: "")
    assert resolve_backend(copy, "auto", "cpu") == ("torch", "cpu")
    monkeypatch.setattr(scorer.backends, "cpu_bf16", lambda: "avx512")
    assert resolve_backend(copy, "auto", "cpu") == ("torch-bf16", "cpu")
    with pytest.raises(ScorerError, match="finsent export"):
        load_backend(copy, backend="onnx-int8")


@pytest.mark.parametrize(("bf16", "expected"), [
    ("", "onnx-int8"), ("avx512", "onnx-int8"), ("amx", "torch-bf16")])
def test_auto_keeps_a_declared_int8_unless_amx(
    shipped_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bf16: str,
    expected: str,
) -> None:
    """INT8 that passed its accuracy check beats AVX512-BF16 on speed; AMX beats INT8."""
    import shutil

    import scorer.backends

    copy = tmp_path / "model"
    shutil.copytree(shipped_model_dir, copy)
    meta = json.loads((copy / "metrics.json").read_text())
    meta["serving"] = {"cpu_default": "onnx-int8"}
    (copy / "metrics.json").write_text(json.dumps(meta))
    monkeypatch.setattr(scorer.backends, "cpu_bf16", lambda: bf16)
    assert resolve_backend(copy, "auto", "cpu") == (expected, "cpu")
    assert load_backend(copy, device="cpu").name == expected


def test_score_cli_json_lines(shipped_model_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "finsent.cli", "score", "--model", str(shipped_model_dir)],
        input="Quarterly profit doubled and sales rose 30 %.\n\nThe company cut jobs after "
        "losses widened.\n",
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["positive", "negative"]
    assert set(rows[0]) >= {"label", "p_negative", "p_neutral", "p_positive", "score"}


def test_export_int8_records_the_serving_default(tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from scorer.export import SMOOTHING_ALPHAS, export_int8
    from tests.fixtures.model import tiny_sets

    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    train, _, valid, _ = tiny_sets()
    serving = export_int8(copy, valid, calibration=train.texts[:18], probe=train.texts[18:])
    assert (copy / "model_int8.onnx").is_file()
    smoothed = {f"smoothed-{a}-per-channel" for a in SMOOTHING_ALPHAS}
    cands = serving["int8_candidates"]
    assert set(cands) == {"per-tensor", "per-channel"} | smoothed
    # the kept variant is the one that changes fewest probe labels against torch
    kept = min(cands, key=lambda n: (cands[n]["label_disagreement"],
                                     cands[n]["mean_abs_score_change"]))
    assert serving["int8_scheme"].split(", ")[-1].startswith(kept + " (fewest label changes")
    assert all(c["probe_texts"] == 18 and 0 <= c["label_disagreement"] <= 1 for c in cands.values())
    assert serving["validation_accuracy_int8"] == cands[kept]["validation_accuracy"]
    assert serving["gate_rows"]["n"] == len(valid)
    assert serving["cpu_default"] == (
        "onnx-int8" if serving["int8_accuracy_change"] >= -0.005 else "torch"
    )
    meta = json.loads((copy / "metrics.json").read_text())
    assert meta["serving"] == serving and meta["recipe"]["max_length"] == 32
    backend = load_backend(copy, backend=serving["cpu_default"], device="cpu")
    assert backend.name == serving["cpu_default"]
    _check_sentiments(backend.predict(SAMPLE[:4]), 4)


def test_export_int8_without_texts_keeps_the_best_on_validation(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from scorer.export import export_int8
    from tests.fixtures.model import tiny_sets

    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    serving = export_int8(copy, tiny_sets()[2])
    cands = serving["int8_candidates"]
    assert set(cands) == {"per-tensor", "per-channel"}
    assert serving["validation_accuracy_int8"] == max(c["validation_accuracy"]
                                                      for c in cands.values())
    assert "best validation accuracy" in serving["int8_scheme"]


def test_model_card_states_licence_and_cost() -> None:
    from scorer.model_card import flops_per_token, render

    minilm = {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6}
    bert = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12}
    assert flops_per_token(minilm) / flops_per_token(bert) < 0.2
    text = render({"name": "finsent-minilm", "version": "9.9", "serving": {"cpu_default": "torch"},
                   "evaluation": {"torch": {"phrasebank_test": {"n": 5, "accuracy": 0.8,
                                                                "macro_f1": 0.7, "f1": {}}}}})
    assert "CC BY-NC-SA 3.0" in text and "Non-commercial" in text and "Share-alike" in text
    assert "| torch | phrasebank_test | 5 | 0.800 | 0.700 |" in text
