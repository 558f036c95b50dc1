"""ONNX export and INT8 dynamic quantization (optimum + ONNX Runtime), with an accuracy check.

Several INT8 variants are built (``export_int8``); the one closest to the torch model on
unlabelled training texts is kept, and it becomes the CPU serving default only when it loses
at most 0.5 accuracy points against torch on the validation rows (PhraseBank validation + tfns
validation; the PhraseBank test split stays untouched). The decision is recorded in
``metrics.json`` -> ``serving`` where ``load_backend`` reads it. The fp32 ONNX
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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scorer.backends import INT8_FILE, WEIGHTS_FILE, OnnxBackend, load_backend, read_metrics
from scorer.data import LabelledSet
from scorer.evaluate import metrics, predict_ids, predict_sentiments
from scorer.exceptions import ScorerError

if TYPE_CHECKING:
    from scorer.backends import Backend, Sentiment

log = logging.getLogger(__name__)

MAX_INT8_LOSS = 0.005
"""INT8 may lose at most this much validation accuracy (0.5 points) to stay the CPU default."""
SMOOTHING_ALPHAS = (0.5, 0.75, 0.9)
"""Migration strengths tried (``scorer.smoothing``); 0.5 is SmoothQuant's default."""
CALIBRATION_TEXTS = 256
"""Per source: activation ranges for smoothing come from this many texts."""
PROBE_TEXTS = 1000
"""Per source: unlabelled texts on which the INT8 candidates are compared with torch."""


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


def _accuracy(backend: Backend, data: LabelledSet) -> dict[str, Any]:
    started = time.perf_counter()
    m = metrics(data.labels, predict_ids(backend, data.texts))
    m["seconds"] = round(time.perf_counter() - started, 2)
    return m


def _fidelity(reference: Sequence[Sentiment], got: Sequence[Sentiment]) -> dict[str, float]:
    """How far INT8 strays from the torch model on unlabelled texts: labels and scores."""
    n = len(reference)
    changed = sum(a.label != b.label for a, b in zip(reference, got, strict=True))
    diffs = sorted(abs(a.score - b.score) for a, b in zip(reference, got, strict=True))
    return {"probe_texts": n, "label_disagreement": round(changed / n, 4),
            "mean_abs_score_change": round(sum(diffs) / n, 5),
            "p99_abs_score_change": round(diffs[min(n - 1, int(0.99 * n))], 4)}


def export_int8(model_dir: Path, validation: LabelledSet, calibration: Sequence[str] = (),
                probe: Sequence[str] = ()) -> dict[str, Any]:
    """Writes ``model_int8.onnx`` and records the serving decision in ``metrics.json``.

    Candidates: plain dynamic INT8 with per-tensor and per-channel weights, and, given
    ``calibration`` texts, per-channel INT8 of the graph smoothed at each of
    ``SMOOTHING_ALPHAS``. With ``probe`` texts (unlabelled, not the validation split) the
    candidate whose labels agree most with the torch model's there is kept: 387 validation
    rows move by whole sentences (0.26 points each) and cannot rank close candidates, while
    agreement on thousands of texts can. Without them, the best validation accuracy wins.
    Either way the 0.5-point rule on ``validation`` decides whether INT8 becomes the CPU default.
    """
    from scorer.smoothing import activation_ranges, smooth

    model_dir = Path(model_dir)
    reference = load_backend(model_dir, backend="torch", device="cpu")
    torch_m = _accuracy(reference, validation)
    probe_ref = predict_sentiments(reference, probe) if probe else []
    eval_length = reference.max_length  # the candidates are read at the torch model's length
    del reference
    max_length = int(read_metrics(model_dir).get("recipe", {}).get("max_length", 128))
    candidates: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="finsent-export-") as tmp:
        onnx_dir = Path(tmp) / "fp32"
        _export_fp32(model_dir, onnx_dir)
        shutil.copyfile(model_dir / "config.json", onnx_dir / "config.json")
        plans: list[tuple[str, Path, bool]] = [("per-tensor", onnx_dir, False),
                                               ("per-channel", onnx_dir, True)]
        if calibration:
            ranges = activation_ranges(onnx_dir / "model.onnx", model_dir, calibration,
                                       max_length)
            for alpha in SMOOTHING_ALPHAS:
                src = Path(tmp) / f"smoothed-{alpha}"
                smooth(onnx_dir / "model.onnx", ranges, alpha, src / "model.onnx")
                shutil.copyfile(model_dir / "config.json", src / "config.json")
                plans.append((f"smoothed-{alpha}-per-channel", src, True))
        for name, src, per_channel in plans:
            cand = Path(tmp) / f"{name}.onnx"
            _quantize(src, per_channel, cand)
            backend = OnnxBackend(model_dir, cand, "onnx-int8", eval_length, threads=0)
            m = _accuracy(backend, validation)
            record: dict[str, Any] = {"validation_accuracy": m["accuracy"],
                                      "validation_macro_f1": m["macro_f1"],
                                      "bytes": cand.stat().st_size, "seconds": m["seconds"]}
            if probe:
                record.update(_fidelity(probe_ref, predict_sentiments(backend, probe)))
            candidates[name] = record
            log.info("INT8 %s: %s (torch validation accuracy %s)", name, record,
                     torch_m["accuracy"])

        def rank(name: str) -> tuple[float, ...]:
            c = candidates[name]
            if probe:
                return (c["label_disagreement"], c["mean_abs_score_change"])
            return (-float(c["validation_accuracy"]),)

        best_name = min(candidates, key=rank)  # dicts keep order: ties go to the simpler one
        shutil.copyfile(Path(tmp) / f"{best_name}.onnx", model_dir / INT8_FILE)
    best_acc = float(candidates[best_name]["validation_accuracy"])
    delta = round(best_acc - float(torch_m["accuracy"]), 4)
    how = (f"fewest label changes against torch on {len(probe)} unlabelled texts" if probe
           else "best validation accuracy")
    serving = {
        "cpu_default": "onnx-int8" if delta >= -MAX_INT8_LOSS else "torch",
        "int8_scheme": f"ONNX Runtime dynamic quantization, optimum avx512_vnni config, "
        f"{best_name} ({how})",
        "int8_candidates": candidates,
        "validation_accuracy_torch": torch_m["accuracy"],
        "validation_accuracy_int8": best_acc,
        "int8_accuracy_change": delta,
        "gate_rows": {"source": validation.source, "n": len(validation)},
        "rule": f"INT8 is the CPU default unless it loses more than {MAX_INT8_LOSS * 100:.1f} "
        f"accuracy points against torch on the validation rows ({validation.source}, "
        f"{len(validation)})",
    }
    meta = read_metrics(model_dir)
    meta["serving"] = serving
    (model_dir / "metrics.json").write_text(json.dumps(meta, indent=2) + "\n")
    return serving


def unlabelled_texts(data_dir: Path) -> tuple[list[str], list[str]]:
    """(calibration, probe) texts for ``export_int8``, from the training files only:
    PhraseBank training sentences and, when the folder has them, tfns training tweets."""
    from scorer.data import phrasebank_split, tfns_sets_if_present

    sources = [phrasebank_split(data_dir).train.texts]
    tweets = tfns_sets_if_present(data_dir)
    if tweets is not None:
        sources.append(tweets[0].texts)
    calibration = [t for texts in sources for t in texts[:CALIBRATION_TEXTS]]
    probe = [t for texts in sources for t in texts[CALIBRATION_TEXTS:][:PROBE_TEXTS]]
    return calibration, probe


def validation_set(data_dir: Path) -> LabelledSet:
    """The labelled rows that gate INT8: PhraseBank validation, plus the tfns validation tweets
    when the folder has them. 387 PhraseBank rows alone cannot resolve 0.5 points (one row
    is 0.26; an INT8 model that changes 1 % of labels moves it by +-2 rows by chance)."""
    from scorer.data import phrasebank_split, tfns_sets_if_present

    rows = phrasebank_split(data_dir).validation
    tweets = tfns_sets_if_present(data_dir)
    return rows if tweets is None else rows + tweets[1]


__all__ = ["export_int8", "fp32_onnx", "unlabelled_texts", "validation_set", "MAX_INT8_LOSS"]
