"""Domain-adaptive masked-LM pre-training: the corpus filter and a tiny run that fine-tunes."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scorer.exceptions import ScorerError
from scorer.pretrain import PretrainConfig, pretrain, stocknet_texts
from scorer.train import TrainConfig, default_base, train
from tests.fixtures.model import NEGATIVE, NEUTRAL, POSITIVE, tiny_sets
from tests.scorer.test_train_eval import run_cli


def _stocknet(folder: Path, rows: list[tuple[str, str, str]]) -> None:
    (folder / "stocknet").mkdir(parents=True)
    with gzip.open(folder / "stocknet" / "stocknet_tweets_raw.csv.gz", "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["created_at_utc", "tweet_id", "ticker", "text", "retweet", "lang"])
        for i, (text, retweet, lang) in enumerate(rows):
            w.writerow(["2014-01-01T00:00:00Z", i, "AAPL", text, retweet, lang])


def test_stocknet_sample_keeps_distinct_english_originals(tmp_path: Path) -> None:
    _stocknet(tmp_path, [("$AAPL up", "0", "en"), ("$AAPL up", "0", "en"),
                         ("RT @x: $AAPL up", "1", "en"), ("$AAPL sube", "0", "es"),
                         ("$AAPL down", "0", "en"), ("", "0", "en")])
    assert sorted(stocknet_texts(tmp_path, 10, seed=0)) == ["$AAPL down", "$AAPL up"]
    assert len(stocknet_texts(tmp_path, 1, seed=0)) == 1
    assert stocknet_texts(tmp_path, 2, seed=3) == stocknet_texts(tmp_path, 2, seed=3)
    assert stocknet_texts(tmp_path / "missing", 0, seed=0) == []
    with pytest.raises(ScorerError, match="--stocknet 0"):
        stocknet_texts(tmp_path / "missing", 5, seed=0)


def test_pretrain_adapts_encoder_keeps_pooler_and_fine_tunes(tmp_path: Path) -> None:
    out = tmp_path / "dapt"
    texts = (NEGATIVE + NEUTRAL + POSITIVE) * 2
    record = pretrain(PretrainConfig(data_dir=tmp_path, out=out, epochs=2, lr=5e-4,
                                     batch_size=12, max_length=32, minutes=5), texts=texts)
    assert record["training"]["steps"] == 12  # 72 texts / 12 per batch x 2 epochs
    assert json.loads((out / "metrics.json").read_text())["name"] == "finsent-minilm-dapt"
    before = load_file(str(default_base() / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    key = next(k for k in after if k.endswith("encoder.layer.5.output.dense.weight"))
    assert not torch.equal(after[key].float(), before[key].float())  # the encoder learnt
    pooler = next(k for k in after if k.endswith("pooler.dense.weight"))
    assert torch.equal(after[pooler].float(), before[pooler].float())  # untouched by MLM
    # the output is a base that classification fine-tuning takes as it is
    result = train(TrainConfig(data_dir=tmp_path, out=tmp_path / "clf", base=out, epochs=1,
                               batch_size=12, max_length=32, include_tfns=False, max_steps=2),
                   data=tiny_sets())
    assert result.steps == 2
    meta = json.loads((tmp_path / "clf" / "metrics.json").read_text())
    assert meta["base_model_record"]["name"] == "finsent-minilm-dapt"


def test_pretrain_needs_texts(tmp_path: Path) -> None:
    with pytest.raises(ScorerError, match="no texts"):
        pretrain(PretrainConfig(data_dir=tmp_path, out=tmp_path / "o"), texts=[])


def test_pretrain_cli_without_data_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = run_cli("pretrain", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("finsent: error: PhraseBank file not found")
    assert not (tmp_path / "o").exists()
