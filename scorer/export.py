"""ONNX export and INT8 dynamic quantization (optimum + ONNX Runtime), with an accuracy check.

The INT8 model becomes the CPU serving default only when it loses at most 0.5 accuracy points
against the torch model on the validation split (the test split stays untouched); the decision
is recorded in ``metrics.json`` -> ``serving`` where ``load_backend`` reads it. The fp32 ONNX
model is not shipped (size); ``fp32_onnx`` exports it on demand into a per-user cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from scorer.backends import INT8_FILE, WEIGHTS_FILE, load_backend, read_metrics
from scorer.data import LABEL2ID, LabelledSet
from scorer.evaluate import metrics
from scorer.exceptions import ScorerError

log = logging.getLogger(__name__)

MAX_INT8_LOSS = 0.005
"""INT8 may lose at most this much validation accuracy (0.5 points) to stay the CPU default."""


def _export_fp32(model_dir: Path, dest: Path) -> Path:
    """Exports ``model_dir`` to ``dest/model.onnx`` from an fp32 copy of its (fp16) weights."""
    import torch
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="finsent-fp32-") as tmp:
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, local_files_only=True, dtype=torch.float32
        )
        model.config.torch_dtype = "float32"
        model.save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(model_dir, local_files_only=True).save_pretrained(tmp)
        try:
            ort_model = ORTModelForSequenceClassification.from_pretrained(
                tmp, export=True, local_files_only=True
            )
        except Exception as e:  # optimum/torch.onnx raise many unrelated types
            raise ScorerError(f"ONNX export of {model_dir} failed: {e}") from e
        dest.mkdir(parents=True, exist_ok=True)
        ort_model.save_pretrained(dest)
    return dest / "model.onnx"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "finsent" / "onnx"


def fp32_onnx(model_dir: Path) -> Path:
    """The fp32 ONNX model of ``model_dir``, exported once into the cache (keyed by weights)."""
    weights = Path(model_dir) / WEIGHTS_FILE
    if not weights.is_file():
        raise ScorerError(f"{weights} is missing: cannot export an fp32 ONNX model")
    stat = weights.stat()
    key = hashlib.sha256(f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    dest = cache_dir() / key.hexdigest()[:16]
    onnx = dest / "model.onnx"
    if not onnx.is_file():
        log.info("exporting fp32 ONNX model of %s into %s (first use)", model_dir, dest)
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        _export_fp32(Path(model_dir), tmp)
        if not onnx.is_file():
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return onnx


def _quantize(onnx_dir: Path, per_channel: bool, out: Path) -> Path:
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    qconfig = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=per_channel)
    quantizer = ORTQuantizer.from_pretrained(onnx_dir, file_name="model.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))  # onnxruntime logs every tensor at INFO on root
    try:
        with tempfile.TemporaryDirectory(prefix="finsent-int8-") as tmp:
            quantizer.quantize(save_dir=tmp, quantization_config=qconfig)
            produced = next(Path(tmp).glob("*quantized*.onnx"))
            shutil.copyfile(produced, out)
    finally:
        root.setLevel(level)
    return out


def _accuracy(model_dir: Path, backend: str, data: LabelledSet) -> dict[str, Any]:
    from scorer.evaluate import predict_ids

    be = load_backend(model_dir, backend=backend, device="cpu")
    started = time.perf_counter()
    pred = predict_ids(be, data.texts)
    m = metrics(data.labels, pred)
    m["seconds"] = round(time.perf_counter() - started, 2)
    return m


def export_int8(model_dir: Path, validation: LabelledSet) -> dict[str, Any]:
    """Writes ``model_int8.onnx`` (best of per-tensor / per-channel by validation accuracy) and
    records the serving decision in ``metrics.json``; returns that record."""
    model_dir = Path(model_dir)
    torch_m = _accuracy(model_dir, "torch", validation)
    candidates: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="finsent-export-") as tmp:
        onnx_dir = Path(tmp) / "fp32"
        _export_fp32(model_dir, onnx_dir)
        shutil.copyfile(model_dir / "config.json", onnx_dir / "config.json")
        best_name, best_acc = "", -1.0
        for per_channel in (False, True):
            name = "per-channel" if per_channel else "per-tensor"
            cand = Path(tmp) / f"{name}.onnx"
            _quantize(onnx_dir, per_channel, cand)
            shutil.copyfile(cand, model_dir / INT8_FILE)
            m = _accuracy(model_dir, "onnx-int8", validation)
            candidates[name] = {"validation_accuracy": m["accuracy"],
                                "validation_macro_f1": m["macro_f1"],
                                "bytes": cand.stat().st_size, "seconds": m["seconds"]}
            log.info("INT8 %s: validation accuracy %s (torch %s)", name, m["accuracy"],
                     torch_m["accuracy"])
            if float(m["accuracy"]) > best_acc:
                best_name, best_acc = name, float(m["accuracy"])
        shutil.copyfile(Path(tmp) / f"{best_name}.onnx", model_dir / INT8_FILE)
    delta = round(best_acc - float(torch_m["accuracy"]), 4)
    serving = {
        "cpu_default": "onnx-int8" if delta >= -MAX_INT8_LOSS else "torch",
        "int8_scheme": f"ONNX Runtime dynamic quantization, optimum avx512_vnni config, "
        f"{best_name} weights (best on validation)",
        "int8_candidates": candidates,
        "validation_accuracy_torch": torch_m["accuracy"],
        "validation_accuracy_int8": best_acc,
        "int8_accuracy_change": delta,
        "rule": f"INT8 is the CPU default unless it loses more than {MAX_INT8_LOSS * 100:.1f} "
        "accuracy points against torch on the validation split",
    }
    meta = read_metrics(model_dir)
    meta["serving"] = serving
    (model_dir / "metrics.json").write_text(json.dumps(meta, indent=2) + "\n")
    return serving


def validation_set(data_dir: Path) -> LabelledSet:
    from scorer.data import phrasebank_split

    return phrasebank_split(data_dir).validation


__all__ = ["export_int8", "fp32_onnx", "validation_set", "MAX_INT8_LOSS", "LABEL2ID"]
