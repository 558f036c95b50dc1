"""One inference interface for the worker, ``finsent score``/``eval`` and the benchmarks.

Backends:
  ``onnx-int8``  ONNX Runtime, dynamically quantized INT8 (``model_int8.onnx``; CPU default).
  ``onnx``       ONNX Runtime fp32; not shipped (size), exported on first use into a cache dir.
  ``torch``      PyTorch; fp32 on CPU (the fp16 safetensors are cast up), fp16 on CUDA.
  ``torch-bf16`` PyTorch in bfloat16: on a CPU with AMX (Intel Sapphire Rapids and later) oneDNN
                 runs it on the matrix units, faster than INT8 and as accurate as fp32; with
                 AVX512-BF16 (AMD Zen 4, Intel Cooper Lake) 1.6-1.7x torch fp32.

``auto`` picks torch fp16 when CUDA is present; on a CPU with AMX-BF16, torch-bf16
(bench/bench_scorer.py: 1.3x the INT8 records/s there, no accuracy lost); else the model
folder's declared CPU default (``metrics.json`` -> ``serving.cpu_default``, written by
``finsent export`` after its accuracy check), except that a declared torch fp32 becomes
torch-bf16 on a CPU with AVX512-BF16 (same accuracy, 1.6-1.7x the speed measured on Zen 4; a
declared INT8 stays: it is faster still there). Loading never touches the network.

``model_version`` is ``"{name}-{version}:{variant}"`` (e.g. ``finsent-minilm-1.0:onnx-int8``)
with name/version from the folder's ``metrics.json``; variant is the backend, ``torch-fp16`` on
CUDA, because the same weights on a different backend give slightly different probabilities
and stored scores must say which produced them. A folder without ``metrics.json`` (a user's
own model) is named ``{folder name}-{first 8 hex of the weights' sha256}``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from scorer.exceptions import ScorerError

BACKENDS: tuple[str, ...] = ("auto", "onnx-int8", "onnx", "torch", "torch-bf16")
INT8_FILE = "model_int8.onnx"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class Sentiment:
    """One text's prediction; ``score = p_positive - p_negative`` in [-1, 1]."""

    label: str
    p_negative: float
    p_neutral: float
    p_positive: float
    score: float

    def as_dict(self) -> dict[str, object]:
        return {"label": self.label, "p_negative": self.p_negative, "p_neutral": self.p_neutral,
                "p_positive": self.p_positive, "score": self.score}


@runtime_checkable
class Backend(Protocol):
    name: str
    model_version: str
    max_length: int

    def predict(self, texts: Sequence[str]) -> list[Sentiment]:
        """One forward pass over ``texts`` (the caller batches)."""
        ...

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text costs after truncation, for token-budget batching."""
        ...


def read_metrics(model_dir: Path) -> dict[str, Any]:
    path = Path(model_dir) / "metrics.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ScorerError(f"{path} is not valid JSON: {e}") from e


def model_name(model_dir: Path) -> str:
    """``name-version`` from metrics.json, else folder name + weights digest."""
    meta = read_metrics(model_dir)
    if meta.get("name") and meta.get("version"):
        return f"{meta['name']}-{meta['version']}"
    digest = hashlib.sha256()
    weights = Path(model_dir) / WEIGHTS_FILE
    if weights.is_file():
        with weights.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return f"{Path(model_dir).resolve().name}-{digest.hexdigest()[:8]}"


def cpu_default(model_dir: Path) -> str:
    """The CPU backend ``finsent export`` declared; torch when no INT8 model passed its check."""
    serving = read_metrics(model_dir).get("serving", {})
    declared = serving.get("cpu_default")
    if declared == "onnx-int8" and (Path(model_dir) / INT8_FILE).is_file():
        return "onnx-int8"
    return "torch"


def cpu_bf16() -> str:
    """How this CPU does bf16 matmuls: "amx" (matrix units), "avx512" (AVX512-BF16 dot
    products) or "" (emulated: slower than fp32). Read from /proc (Linux), no torch import."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split())
                    if "amx_bf16" in flags:
                        return "amx"
                    return "avx512" if "avx512_bf16" in flags else ""
    except OSError:
        pass
    return ""


def _cuda_available() -> bool:
    # Without an NVIDIA driver there is no CUDA: answer without importing torch, which costs
    # seconds on every worker (re)start of the ONNX path.
    if not (Path("/proc/driver/nvidia").exists() or os.environ.get("CUDA_VISIBLE_DEVICES")):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _check_folder(model_dir: Path) -> Path:
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ScorerError(
            f"no model at {model_dir} (missing config.json); point FINSENT_MODEL or --model to a "
            "fine-tuned model folder, or create one with `finsent train`"
        )
    return model_dir


def _label_index(config: Any) -> dict[str, int]:
    """Column of each of negative/neutral/positive in the model's output, read from id2label."""
    by_name = {str(v).lower(): int(k) for k, v in config.id2label.items()}
    missing = [n for n in ("negative", "neutral", "positive") if n not in by_name]
    if missing:
        raise ScorerError(
            f"model labels {sorted(by_name)} lack {', '.join(missing)}; "
            "expected a negative/neutral/positive sentiment model"
        )
    return by_name


def _to_sentiments(probs: Any, index: dict[str, int]) -> list[Sentiment]:
    out: list[Sentiment] = []
    for row in probs.tolist():
        neg, neu, pos = (float(row[index[n]]) for n in ("negative", "neutral", "positive"))
        label = max((neg, "negative"), (neu, "neutral"), (pos, "positive"))[1]
        out.append(Sentiment(label, round(neg, 6), round(neu, 6), round(pos, 6),
                             round(pos - neg, 6)))
    return out


class _Tokenizing:
    """Tokenizer handling shared by the backends."""

    tokenizer: Any
    max_length: int

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [len(ids) for ids in enc["input_ids"]]

    def _encode(self, texts: Sequence[str], tensors: str) -> Any:
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length,
                              padding=True, return_tensors=tensors)


def _tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ScorerError(f"cannot load the tokenizer from {model_dir}: {e}") from e


class TorchBackend(_Tokenizing):
    """PyTorch under ``inference_mode``: fp32 on CPU, fp16 on CUDA, or bf16 on either."""

    name = "torch"

    def __init__(self, model_dir: Path, device: str, max_length: int, threads: int,
                 bf16: bool = False) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification

        if device == "cpu":
            torch.set_num_threads(threads or os.cpu_count() or 1)
        self.device = torch.device(device)
        cuda_dtype = torch.float16 if device == "cuda" else torch.float32
        dtype = torch.bfloat16 if bf16 else cuda_dtype
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                model_dir, local_files_only=True, dtype=dtype
            )
        except (OSError, ValueError) as e:
            raise ScorerError(f"cannot load the model from {model_dir}: {e}") from e
        self.model = model.to(self.device).eval()
        self.tokenizer = _tokenizer(model_dir)
        self.max_length = max_length
        self.index = _label_index(model.config)
        variant = "torch-bf16" if bf16 else "torch-fp16" if device == "cuda" else "torch"
        self.name = "torch-bf16" if bf16 else "torch"
        self.model_version = f"{model_name(model_dir)}:{variant}"

    def predict(self, texts: Sequence[str]) -> list[Sentiment]:
        import torch

        if not texts:
            return []
        enc = self._encode(texts, "pt").to(self.device)
        with torch.inference_mode():
            logits = self.model(**enc).logits.float()
        return _to_sentiments(torch.softmax(logits, dim=-1).cpu().numpy(), self.index)


class _FastTokenizing:
    """The model's ``tokenizer.json`` through the ``tokenizers`` library alone.

    Same encodings as transformers' fast tokenizer (which wraps the same file), without
    importing torch and transformers: a worker on the ONNX path starts seconds sooner, which
    is what crash recovery waits for.
    """

    max_length: int

    def _load_tokenizer(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        path = model_dir / "tokenizer.json"
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises untyped errors
            raise ScorerError(f"cannot load the tokenizer {path}: {e}") from e
        tok.enable_truncation(max_length=self.max_length)
        tok.no_padding()
        self.tokenizer = tok
        pad = tok.token_to_id("[PAD]")
        self.pad_id = 0 if pad is None else pad

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts))]

    def _encode_np(self, texts: Sequence[str]) -> dict[str, Any]:
        import numpy as np

        encs = self.tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encs)
        ids = np.full((len(encs), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        types = np.zeros((len(encs), width), dtype=np.int64)
        for row, e in enumerate(encs):
            n = len(e.ids)
            ids[row, :n] = e.ids
            mask[row, :n] = 1
            types[row, :n] = e.type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


class TextEncoder(_FastTokenizing):
    """The model's tokenizer alone, padded into the arrays ``OnnxBackend`` feeds its graph: for
    code that runs an ONNX graph itself (``scorer.smoothing`` calibrates one)."""

    def __init__(self, model_dir: Path, max_length: int) -> None:
        self.max_length = max_length
        self._load_tokenizer(Path(model_dir))

    def encode(self, texts: Sequence[str], inputs: set[str]) -> dict[str, Any]:
        """The arrays for ``texts`` that the graph declares among ``inputs``."""
        return {k: v for k, v in self._encode_np(texts).items() if k in inputs}


def _id2label(model_dir: Path) -> Any:
    """The config's id2label without transformers (config.json is plain JSON)."""
    from types import SimpleNamespace

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return SimpleNamespace(id2label=config.get("id2label", {}))


class OnnxBackend(_FastTokenizing):
    """ONNX Runtime on CPU (INT8 shipped; fp32 exported on demand)."""

    def __init__(self, model_dir: Path, onnx_file: Path, name: str, max_length: int,
                 threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # 0 = ONNX Runtime's default: all physical cores
        opts.inter_op_num_threads = 1  # a BERT graph is a chain: nothing runs side by side
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads block instead of spinning. Spinning burns the cores the worker's
        # own thread needs between runs (Kafka, SQL), and on a shared machine a spinning
        # thread waits on a descheduled partner: bench/bench_tuning.py measured spinning on
        # at 0.5-0.7x the records/s of spinning off on a busy 2-core machine.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(onnx_file), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own untyped errors
            raise ScorerError(f"cannot load ONNX model {onnx_file}: {e}") from e
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.name = name
        self.max_length = max_length
        self._load_tokenizer(model_dir)
        self.index = _label_index(_id2label(model_dir))
        self.model_version = f"{model_name(model_dir)}:{name}"

    def predict(self, texts: Sequence[str]) -> list[Sentiment]:
        import numpy as np

        if not texts:
            return []
        enc = self._encode_np(texts)
        feed = {k: v for k, v in enc.items() if k in self.inputs}
        if "token_type_ids" in self.inputs and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        logits = self.session.run(["logits"], feed)[0].astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return _to_sentiments(probs, self.index)


def resolve_backend(model_dir: Path, backend: str, device: str) -> tuple[str, str]:
    """(backend, device) after ``auto`` and the CUDA checks; raises ScorerError on a bad pair."""
    if backend not in BACKENDS:
        raise ScorerError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if device not in ("auto", "cpu", "cuda"):
        raise ScorerError(f"unknown device {device!r}; choose auto, cpu or cuda")
    if backend.startswith("onnx") and device == "cuda":
        raise ScorerError(
            f"backend {backend!r} runs on CPU only; use --backend torch with --device cuda"
        )
    cuda = _cuda_available()
    if device == "cuda" and not cuda:
        raise ScorerError(
            "device 'cuda' requested but CUDA is not available (no GPU or a CPU-only torch); "
            "use --device cpu / FINSENT_DEVICE=cpu"
        )
    if backend == "auto":
        if device == "cuda" or (device == "auto" and cuda):
            return "torch", "cuda"
        bf16 = cpu_bf16()
        declared = cpu_default(model_dir)
        if bf16 == "amx" or (bf16 == "avx512" and declared == "torch"):
            return "torch-bf16", "cpu"
        return declared, "cpu"
    if backend.startswith("onnx"):
        return backend, "cpu"
    return backend, ("cuda" if device == "cuda" or (device == "auto" and cuda) else "cpu")


def load_backend(
    model_dir: Path,
    backend: str = "auto",
    device: str = "auto",
    max_length: int = 128,
    threads: int = 0,
) -> Backend:
    """Loads ``model_dir`` with the chosen backend; local files only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    model_dir = _check_folder(Path(model_dir))
    name, dev = resolve_backend(model_dir, backend, device)
    if name in ("torch", "torch-bf16"):
        return TorchBackend(model_dir, dev, max_length, threads, bf16=name == "torch-bf16")
    if name == "onnx-int8":
        path = model_dir / INT8_FILE
        if not path.is_file():
            raise ScorerError(
                f"{path} is missing; run `finsent export --model {model_dir}` "
                "or use --backend torch"
            )
        return OnnxBackend(model_dir, path, name, max_length, threads)
    from scorer.export import fp32_onnx

    return OnnxBackend(model_dir, fp32_onnx(model_dir), name, max_length, threads)
