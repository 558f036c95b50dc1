"""Distillation: the loss blend, the teacher's soft targets, and a tiny distilled run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scorer.augment import augment
from scorer.data import LabelledSet
from scorer.exceptions import ScorerError
from scorer.train import (
    UNLABELLED,
    TrainConfig,
    _row_loss,
    _taught_rows,
    autocast_dtype,
    build_training_set,
    cpu_has_fast_bf16,
    feature_loss,
    fit_projection,
    mean_pool,
    teacher_targets,
    train,
)
from tests.fixtures.model import NEGATIVE, POSITIVE, tiny_sets


def _cfg(tmp_path: Path, **kw: object) -> TrainConfig:
    return TrainConfig(data_dir=tmp_path, out=tmp_path / "out", **kw)  # type: ignore[arg-type]


def test_row_loss_blends_labels_and_teacher() -> None:
    ce = torch.nn.CrossEntropyLoss(reduction="none")
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    same = torch.softmax(logits / 2.0, dim=-1)  # teacher == student: KL is 0
    y = torch.tensor([0, UNLABELLED])
    half = torch.tensor([0.5, 0.5])
    loss = _row_loss(logits, y, same, half, ce, 2.0)
    assert loss[1].item() == pytest.approx(0.0, abs=1e-6)  # unlabelled: KL only
    assert loss[0].item() == pytest.approx(0.5 * ce(logits[:1], y[:1]).item(), rel=1e-5)
    other = torch.tensor([[0.1, 0.1, 0.8], [0.8, 0.1, 0.1]])
    assert (_row_loss(logits, y, other, half, ce, 2.0) > loss).all()
    # alpha 0 on a labelled row: the teacher is ignored there
    none = _row_loss(logits, y, other, torch.tensor([0.0, 0.5]), ce, 2.0)
    assert none[0].item() == pytest.approx(ce(logits[:1], y[:1]).item(), rel=1e-5)
    assert torch.equal(_row_loss(logits, torch.tensor([0, 1]), None, half, ce, 2.0),
                       ce(logits, torch.tensor([0, 1])))


def test_autocast_choice() -> None:
    assert autocast_dtype("fp32", "cpu") is None
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16
    assert autocast_dtype("auto", "cuda") is torch.float16
    assert autocast_dtype("auto", "cpu") is (torch.bfloat16 if cpu_has_fast_bf16() else None)
    with pytest.raises(ScorerError, match="needs CUDA"):
        autocast_dtype("fp16", "cpu")
    with pytest.raises(ScorerError, match="unknown precision"):
        autocast_dtype("int4", "cpu")


def test_teacher_targets_follow_the_teacher(tiny_model_dir: Path) -> None:
    texts = NEGATIVE[:3] + POSITIVE[:3]
    cpu = torch.device("cpu")
    sharp, none = teacher_targets(tiny_model_dir, texts, 32, 1.0, cpu, None)
    soft, feats = teacher_targets(tiny_model_dir, texts, 32, 4.0, cpu, None, features=True)
    assert sharp.shape == (6, 3) and none is None
    hidden = json.loads((tiny_model_dir / "config.json").read_text())["hidden_size"]
    assert feats.shape == (6, hidden) and feats.abs().sum(-1).min() > 0
    # batched with padding, each row's features equal the row scored alone
    alone, alone_feats = teacher_targets(tiny_model_dir, texts[-1:], 32, 4.0, cpu, None,
                                         features=True)
    assert torch.allclose(alone_feats[0], feats[-1], atol=1e-4)
    assert torch.allclose(alone[0], soft[-1], atol=1e-5)
    assert torch.allclose(sharp.sum(-1), torch.ones(6), atol=1e-5)
    # a higher temperature flattens every row towards uniform
    assert (soft.max(-1).values <= sharp.max(-1).values + 1e-6).all()
    with pytest.raises(ScorerError, match="no config.json"):
        teacher_targets(tiny_model_dir / "missing", texts, 32, 1.0, cpu, None)


def test_mean_pool_ignores_padding_and_feature_loss_is_scale_free() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(mean_pool(hidden, mask), torch.tensor([[2.0, 3.0]]))
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert torch.allclose(feature_loss(a, a * 5), torch.zeros(2), atol=1e-6)
    assert feature_loss(a, -a).tolist() == pytest.approx([2.0, 2.0])
    assert feature_loss(a, a.flip(-1)).tolist() == pytest.approx([1.0, 1.0])


def test_fit_projection_recovers_a_linear_teacher() -> None:
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(400, 8, generator=gen)
    teacher = student @ torch.randn(8, 12, generator=gen) + torch.randn(12, generator=gen)
    weight, bias = fit_projection(student, teacher, ridge=1e-6)
    assert weight.shape == (12, 8) and bias.shape == (12,)
    mapped = student @ weight.T + bias
    assert feature_loss(mapped, teacher).mean().item() < 0.01  # unit-norm targets: near, not exact
    # a random map is far from aligned: the fit is what makes the start meaningful
    assert feature_loss(torch.nn.Linear(8, 12)(student), teacher).mean().item() > 0.3


def test_tiny_distilled_run_with_unlabelled_rows(tmp_path: Path, tiny_model_dir: Path) -> None:
    train_set, weights, valid, described = tiny_sets()
    extra = ["Shares tumbled after the warning.", "Record profit lifts the stock."]
    train_set = train_set + LabelledSet(extra, [UNLABELLED] * 2, "unlabelled")
    cfg = _cfg(tmp_path, teacher=tiny_model_dir, epochs=1, lr=2e-4, batch_size=12,
               max_length=32, include_tfns=False, max_steps=3, patience=5, precision="fp32")
    result = train(cfg, data=(train_set, weights + [1.0, 1.0], valid, described))
    meta = json.loads((result.out / "metrics.json").read_text())
    assert meta["recipe"]["teacher"] == str(tiny_model_dir)
    assert meta["recipe"]["distill_alpha"] == 0.7 and result.steps == 3
    teacher_config = json.loads((tiny_model_dir / "config.json").read_text())
    assert meta["teacher_record"]["layers"] == teacher_config["num_hidden_layers"]
    assert meta["teacher_record"]["flops_per_token_seq128"] > 0
    # unlabelled rows without a teacher are refused, not trained on as class -1
    no_teacher = _cfg(tmp_path, epochs=1, max_steps=1, max_length=32, include_tfns=False)
    with pytest.raises(ScorerError, match="need a teacher"):
        train(no_teacher, data=(train_set, weights + [1.0, 1.0], valid, described))


def test_feature_distillation_trains_the_encoder_and_ships_no_extra_weights(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    from safetensors.torch import load_file

    data = tiny_sets()
    runs = {}
    for beta in (0.0, 2.0):
        cfg = TrainConfig(data_dir=tmp_path, out=tmp_path / f"beta{beta}", teacher=tiny_model_dir,
                          distill_features=beta, epochs=1, lr=2e-4, batch_size=12,
                          max_length=32, include_tfns=False, max_steps=3, patience=5,
                          precision="fp32")
        train(cfg, data=data)
        runs[beta] = load_file(str(cfg.out / "model.safetensors"))
        assert json.loads((cfg.out / "metrics.json").read_text())["recipe"][
            "distill_features"] == beta
    shipped = load_file(str(tiny_model_dir / "model.safetensors"))
    # the trained map is dropped: the saved model has exactly the classifier's tensors
    assert set(runs[2.0]) == set(runs[0.0]) == set(shipped)
    encoder = [k for k in runs[0.0] if "encoder" in k]
    assert any(not torch.equal(runs[0.0][k], runs[2.0][k]) for k in encoder)
    with pytest.raises(ScorerError, match="needs a teacher"):
        train(TrainConfig(data_dir=tmp_path, out=tmp_path / "x", distill_features=1.0,
                          max_steps=1, max_length=32, include_tfns=False), data=data)


def test_taught_rows_leave_labelled_tweets_to_their_labels(tmp_path: Path) -> None:
    tfns = tmp_path / "tfns"
    tfns.mkdir()
    (tfns / "sent_train.csv").write_text("text,label\n$X falls on weak guidance,0\n"
                                         "$Y jumps after upgrade,1\n")
    (tfns / "sent_valid.csv").write_text("text,label\n$Z flat,2\n")
    rows = LabelledSet(["Profit rose .", "$X falls on weak guidance", "$Y jumps after upgrade",
                        "an unlabelled tweet"], [2, 0, 2, UNLABELLED])
    cfg = _cfg(tmp_path, teacher=tmp_path, include_tfns=True)
    assert _taught_rows(cfg, rows) == [0, 3]
    both = _cfg(tmp_path, teacher=tmp_path, include_tfns=True, distill_labelled_tweets=True)
    assert _taught_rows(both, rows) == [0, 1, 2, 3]
    assert _taught_rows(_cfg(tmp_path, include_tfns=False), rows) == [0, 1, 2, 3]


def test_augment_is_deterministic_distinct_and_never_an_original() -> None:
    texts = ["Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the same period",
             "Sales fell sharply", "Up", "The company will publish its results on Friday ."]
    first = augment(texts, copies=4, seed=3)
    assert first == augment(texts, copies=4, seed=3)
    assert first != augment(texts, copies=4, seed=4)
    assert len(first) == len(set(first)) and not set(first) & set(texts)
    assert all(t.strip() for t in first)
    long = texts[0].split()
    copies_of_long = [t for t in first if set(t.split()) <= set(long)]
    assert copies_of_long and all(len(t.split()) < len(long) + 1 for t in copies_of_long)
    assert augment(texts, copies=0, seed=0) == []
    with pytest.raises(ValueError, match="copies"):
        augment(texts, copies=-1, seed=0)


def test_augmented_rows_join_the_training_set_unlabelled(tmp_path: Path) -> None:
    pb = tmp_path / "phrasebank"
    pb.mkdir()
    lines = [f"Company {i} reported that quarterly net sales rose by {i} percent .@positive"
             for i in range(30)]
    (pb / "Sentences_50Agree.txt").write_bytes("\r\n".join(lines).encode("latin-1"))
    plain, _, _, _ = build_training_set(_cfg(tmp_path, teacher=tmp_path, include_tfns=False))
    rows, weights, _, described = build_training_set(
        _cfg(tmp_path, teacher=tmp_path, include_tfns=False, distill_augment=2))
    extra = len(rows) - len(plain)
    assert extra == described["phrasebank_augmented_transfer"] > len(plain)
    assert rows.labels[len(plain):] == [UNLABELLED] * extra and len(weights) == len(rows)
    without_teacher, _, _, _ = build_training_set(
        _cfg(tmp_path, include_tfns=False, distill_augment=2))
    assert len(without_teacher) == len(plain)


def test_train_cli_refuses_a_transfer_set_without_teacher(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from finsent.cli import app

    for option in ("--distill-augment", "--distill-features"):
        result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "m"), option, "2"])
        assert result.exit_code == 2
        assert "needs --teacher" in result.output
