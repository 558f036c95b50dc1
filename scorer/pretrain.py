"""Domain-adaptive masked-LM pre-training of the base encoder on finance text, before fine-tuning.

The base (all-MiniLM-L6-v2) learnt general English sentence similarity; masked-LM steps on the
training sentences and finance tweets adapt its vocabulary use to the domain (Gururangan et al.
2020, "Don't Stop Pretraining"). Only training texts are used: never PhraseBank validation or
test rows. The output is a plain encoder folder that ``finsent train --base`` fine-tunes.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

from scorer.data import phrasebank_split, tfns_sets_if_present
from scorer.exceptions import ScorerError
from scorer.train import (
    autocast_dtype,
    base_label,
    hardware,
    length_grouped_batches,
    recipe_record,
    resolve_base,
    seed_everything,
)

log = logging.getLogger(__name__)

PRETRAIN_NAME = "finsent-minilm-dapt"


@dataclass(frozen=True)
class PretrainConfig:
    """One pre-training run; all of it lands in the output's metrics.json."""

    data_dir: Path
    out: Path
    base: Path | None = None
    minutes: float = 30.0
    """Wall-clock budget; the learning-rate schedule assumes ``epochs`` and stops early."""
    epochs: int = 2
    lr: float = 1e-4
    batch_size: int = 32
    max_length: int = 96
    mask_probability: float = 0.15
    phrasebank_repeat: int = 3
    """PhraseBank train sentences appear this many times per epoch (the target domain)."""
    stocknet: int = 0
    """StockNet tweets sampled (English, no retweets, distinct texts); 0 = none."""
    head_warmup: float = 0.1
    """Share of the first epoch in which only the fresh masked-LM head trains, so that its
    random start sends no noise into the pretrained encoder."""
    seed: int = 0
    precision: str = "auto"
    version: str = "1.0"


def stocknet_texts(data_dir: Path, n: int, seed: int) -> list[str]:
    """A seeded sample of distinct English original StockNet tweets (retweets repeat a text)."""
    path = data_dir / "stocknet" / "stocknet_tweets_raw.csv.gz"
    if n <= 0:
        return []
    if not path.is_file():
        raise ScorerError(f"StockNet tweets not found at {path}; pass --stocknet 0 to skip them")
    seen: set[str] = set()
    texts: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            text = (row.get("text") or "").strip()
            if row.get("lang") != "en" or row.get("retweet") == "1" or not text or text in seen:
                continue
            seen.add(text)
            texts.append(text)
    random.Random(seed).shuffle(texts)
    return texts[:n]


def pretrain_corpus(cfg: PretrainConfig) -> tuple[list[str], dict[str, int]]:
    """Training texts only: PhraseBank train (repeated), tweet-set train, a StockNet sample."""
    phrasebank = list(phrasebank_split(cfg.data_dir).train.texts)
    tweets = tfns_sets_if_present(cfg.data_dir)
    tfns = list(tweets[0].texts) if tweets is not None else []
    stocknet = stocknet_texts(cfg.data_dir, cfg.stocknet, cfg.seed)
    counts = {"phrasebank_train": len(phrasebank), "phrasebank_repeat": cfg.phrasebank_repeat,
              "tfns_train": len(tfns), "stocknet": len(stocknet)}
    return phrasebank * cfg.phrasebank_repeat + tfns + stocknet, counts


def pretrain(cfg: PretrainConfig, texts: list[str] | None = None) -> dict[str, object]:
    """Masked-LM steps on ``texts`` (default: ``pretrain_corpus``); writes the encoder to
    ``cfg.out`` with the base's pooler kept, so classification fine-tuning starts as before."""
    import torch
    from tqdm.auto import tqdm
    from transformers import (
        AutoModel,
        AutoModelForMaskedLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        get_linear_schedule_with_warmup,
    )

    base = resolve_base(cfg.base)
    if texts is None:
        texts, counts = pretrain_corpus(cfg)
    else:
        counts = {"texts": len(texts)}
    if not texts:
        raise ScorerError("no texts to pre-train on")
    seed_everything(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp_dtype = autocast_dtype(cfg.precision, device.type)
    tok = AutoTokenizer.from_pretrained(base, local_files_only=True)
    # The sentence-transformers base has no masked-LM head: a fresh one (decoder tied to the
    # word embeddings) is trained along with the encoder.
    model = AutoModelForMaskedLM.from_pretrained(base, local_files_only=True,
                                                 dtype=torch.float32).to(device)
    model.train()
    head = next(m for name, m in model.named_children() if name != model.base_model_prefix)
    ids = tok(texts, truncation=True, max_length=cfg.max_length)["input_ids"]
    collate = DataCollatorForLanguageModeling(tok, mlm_probability=cfg.mask_probability)
    rng = random.Random(cfg.seed)
    steps_per_epoch = math.ceil(len(ids) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(opt, int(0.06 * total), total)
    started, step, history = time.monotonic(), 0, []
    budget = cfg.minutes * 60
    out_of_time = False
    encoder = [p for p in model.base_model.parameters() if p.requires_grad]
    head_only = int(cfg.head_warmup * steps_per_epoch)
    for epoch in range(1, cfg.epochs + 1):
        batches = length_grouped_batches([len(x) for x in ids], cfg.batch_size, rng)
        running, seen = 0.0, 0
        bar = tqdm(batches, desc=f"pre-train {epoch}/{cfg.epochs}", unit="batch", leave=False)
        for batch in bar:
            inputs = collate([{"input_ids": ids[i]} for i in batch]).to(device)
            masked = inputs["labels"] != -100
            if step in (0, head_only):
                for p in encoder:
                    p.requires_grad_(step >= head_only)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                enabled=amp_dtype is not None):
                hidden = model.base_model(input_ids=inputs["input_ids"],
                                          attention_mask=inputs["attention_mask"])[0]
                # The vocabulary projection only where a token was masked: ~7x less work
                # than scoring every position, which dominates a small encoder's step.
                logits = head(hidden[masked])
            loss = torch.nn.functional.cross_entropy(logits.float(), inputs["labels"][masked])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            running, seen = running + loss.item(), seen + 1
            bar.set_postfix(mlm_loss=f"{running / seen:.4f}")
            if time.monotonic() - started > budget:
                out_of_time = True
                break
        bar.close()
        history.append({"epoch": epoch, "step": step, "mlm_loss": round(running / seen, 4),
                        "elapsed_s": round(time.monotonic() - started, 1)})
        log.info("pre-train epoch %d: masked-LM loss %.4f (%d steps, %.0f s)", epoch,
                 running / seen, step, time.monotonic() - started)
        if out_of_time:
            log.info("time budget of %.1f minutes reached", cfg.minutes)
            break
    adapted = AutoModel.from_pretrained(base, local_files_only=True, dtype=torch.float32)
    adapted.load_state_dict(model.base_model.state_dict(), strict=False)  # keeps the pooler
    cfg.out.mkdir(parents=True, exist_ok=True)
    adapted.save_pretrained(cfg.out, safe_serialization=True)
    tok.save_pretrained(cfg.out)
    record: dict[str, object] = {
        "name": PRETRAIN_NAME, "version": cfg.version,
        "base": base_label(cfg.base),
        "recipe": recipe_record(cfg) | {"objective": "masked LM"},
        "data": counts,
        "training": {"seconds": round(time.monotonic() - started, 1), "steps": step,
                     "epochs_done": round(step / steps_per_epoch, 2), "history": history,
                     "hardware": hardware()},
    }
    (cfg.out / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    return record

