"""`finsent train`, `eval`, `export` and `score`: the scorer's model side on the command line.

User mistakes (bad files, unknown labels, missing model, no CUDA) surface as ``ScorerError``,
which ``finsent.cli.main`` prints as one line with exit code 2.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from finsent.config import Settings, load_settings

log = logging.getLogger("finsent")

BACKEND_HELP = "auto|onnx-int8|onnx|torch|torch-bf16 (FINSENT_BACKEND)."
DEVICE_HELP = "auto|cpu|cuda (FINSENT_DEVICE)."


def register(app: typer.Typer) -> None:
    """Adds the model commands to the finsent app."""
    app.command("pretrain")(pretrain)
    app.command("train")(train)
    app.command("eval")(evaluate)
    app.command("export")(export)
    app.command("score")(score)


def _settings(**overrides: object) -> Settings:
    """Settings with CLI overrides (a bad value is one line, exit 2: see load_settings)."""
    return load_settings(**overrides)


def pretrain(
    data_dir: Annotated[
        Path | None, typer.Option(help="Shared data folder with phrasebank/, tfns/, stocknet/.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Encoder folder to write.")] = Path("runs/dapt"),
    base: Annotated[
        Path | None, typer.Option(help="Base HF model folder (default: all-MiniLM-L6-v2 wheel).")
    ] = None,
    minutes: Annotated[float, typer.Option(min=0.01, help="Wall-clock budget.")] = 30.0,
    epochs: Annotated[int, typer.Option(min=1)] = 2,
    lr: Annotated[float, typer.Option(min=0.0)] = 1e-4,
    phrasebank_repeat: Annotated[
        int, typer.Option(min=1, help="PhraseBank train sentences per epoch, times.")
    ] = 3,
    stocknet: Annotated[
        int, typer.Option(min=0, help="StockNet tweets to sample (English, no retweets).")
    ] = 0,
    seed: int = 0,
    precision: Annotated[str, typer.Option(help="auto | fp32 | bf16 | fp16.")] = "auto",
) -> None:
    """Masked-LM pre-training on finance text (training texts only) before `finsent train`."""
    from scorer.pretrain import PretrainConfig
    from scorer.pretrain import pretrain as run_pretrain

    settings = _settings(data_dir=data_dir)
    record = run_pretrain(PretrainConfig(
        data_dir=settings.data_dir, out=out, base=base, minutes=minutes, epochs=epochs, lr=lr,
        phrasebank_repeat=phrasebank_repeat, stocknet=stocknet, seed=seed, precision=precision,
    ))
    typer.echo(json.dumps({"out": str(out), "data": record["data"],
                           "training": record["training"]}))


def train(
    data_dir: Annotated[
        Path | None, typer.Option(help="Shared data folder with phrasebank/ and tfns/.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Model folder to write.")] = Path("runs/finsent-minilm"),
    base: Annotated[
        Path | None, typer.Option(help="Base HF model folder (default: all-MiniLM-L6-v2 wheel).")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 5,
    lr: Annotated[float, typer.Option(min=0.0)] = 1e-4,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    max_length: Annotated[int, typer.Option(min=8, max=512)] = 96,
    seed: int = 0,
    include_tfns: Annotated[
        bool, typer.Option("--include-tfns/--no-include-tfns", help="Add the tweet set.")
    ] = True,
    phrasebank_repeat: Annotated[
        int, typer.Option(min=1, help="PhraseBank rows per epoch, times.")
    ] = 1,
    label_smoothing: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.1,
    agreement_weighting: Annotated[
        bool, typer.Option(help="Weight PhraseBank rows by annotator agreement.")
    ] = False,
    warmup_ratio: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.1,
    patience: Annotated[int, typer.Option(min=1, help="Evaluations without gain to stop.")] = 2,
    evals_per_epoch: Annotated[int, typer.Option(min=1)] = 1,
    ema_decay: Annotated[float, typer.Option(min=0.0, max=0.9999)] = 0.0,
    teacher: Annotated[
        Path | None, typer.Option(help="Fine-tuned model folder to distil from (soft targets).")
    ] = None,
    distill_alpha: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Teacher share of the loss on labelled rows.")
    ] = 0.7,
    distill_temperature: Annotated[float, typer.Option(min=0.1, max=20.0)] = 2.0,
    distill_tfns: Annotated[
        bool, typer.Option(help="Tweet-set texts without labels as a transfer set (needs "
                           "--teacher).")
    ] = False,
    distill_labelled_tweets: Annotated[
        bool, typer.Option(help="Teacher targets on the labelled tweets too (default: their "
                           "labels only).")
    ] = False,
    distill_augment: Annotated[
        int, typer.Option(min=0, max=50, help="Perturbed copies of each PhraseBank train "
                          "sentence, unlabelled, as a transfer set (needs --teacher).")
    ] = 0,
    distill_features: Annotated[
        float, typer.Option(min=0.0, max=10.0, help="Weight of matching the teacher's sentence "
                            "representation (cosine, through a dropped linear map; needs "
                            "--teacher; 0 = off).")
    ] = 0.0,
    max_steps: Annotated[int, typer.Option(min=0, help="Stop after N steps (0 = no limit).")] = 0,
    threads: Annotated[int, typer.Option(min=0, help="CPU threads (0 = all).")] = 0,
    precision: Annotated[
        str, typer.Option(help="auto | fp32 | bf16 | fp16 (autocast; auto = bf16 on a CPU "
                          "with native bf16, fp16 on CUDA).")
    ] = "auto",
    version: Annotated[str, typer.Option(help="Version recorded in metrics.json.")] = "1.0",
    do_export: Annotated[
        bool, typer.Option("--export/--no-export", help="ONNX INT8 export + model card after.")
    ] = True,
) -> None:
    """Fine-tune a sentiment model on PhraseBank (+ tweets); select on validation only."""
    from scorer.train import TrainConfig
    from scorer.train import train as run_train

    if teacher is None and (distill_tfns or distill_augment or distill_features):
        raise typer.BadParameter("a transfer set (--distill-tfns, --distill-augment) or "
                                 "--distill-features needs --teacher", param_hint="--teacher")
    settings = _settings(data_dir=data_dir)
    cfg = TrainConfig(
        data_dir=settings.data_dir, out=out, base=base, epochs=epochs, lr=lr,
        batch_size=batch_size, max_length=max_length, seed=seed, include_tfns=include_tfns,
        phrasebank_repeat=phrasebank_repeat, label_smoothing=label_smoothing,
        agreement_weighting=agreement_weighting, warmup_ratio=warmup_ratio, patience=patience,
        evals_per_epoch=evals_per_epoch, ema_decay=ema_decay, max_steps=max_steps,
        teacher=teacher, distill_alpha=distill_alpha, distill_temperature=distill_temperature,
        distill_tfns=distill_tfns, distill_labelled_tweets=distill_labelled_tweets,
        distill_augment=distill_augment, distill_features=distill_features, threads=threads,
        precision=precision, version=version,
    )
    result = run_train(cfg)
    summary: dict[str, object] = {"out": str(out), "validation": result.best_validation,
                                  "train_seconds": round(result.train_seconds, 1)}
    if do_export:
        from scorer.export import export_int8, unlabelled_texts, validation_set
        from scorer.model_card import write_card

        summary["serving"] = export_int8(out, validation_set(settings.data_dir),
                                         *unlabelled_texts(settings.data_dir))
        write_card(out, settings.data_dir)
    typer.echo(json.dumps(summary))


def evaluate(
    data: Annotated[Path, typer.Option(help="PhraseBank .txt or text,label CSV.")],
    split: Annotated[str, typer.Option(help="all | test (the PhraseBank research test split).")]
    = "all",
    model: Annotated[Path | None, typer.Option(help="Model folder (FINSENT_MODEL).")] = None,
    backend: Annotated[str | None, typer.Option(help=BACKEND_HELP)] = None,
    device: Annotated[str | None, typer.Option(help=DEVICE_HELP)] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="phrasebank|csv|tfns (default: detected).")
    ] = None,
    label_map: Annotated[
        str | None,
        typer.Option(help="Rename CSV labels, e.g. 'bearish=negative,bullish=positive'."),
    ] = None,
) -> None:
    """Accuracy, macro-F1, per-class F1 and confusion matrix as ONE JSON object on stdout."""
    from scorer.backends import load_backend
    from scorer.data import read_any, research_split
    from scorer.evaluate import metrics, predict_ids
    from scorer.exceptions import ScorerError

    if split not in ("all", "test"):
        raise ScorerError(f"--split must be 'all' or 'test', not {split!r}")
    if fmt is not None and fmt not in ("phrasebank", "csv", "tfns"):
        raise ScorerError(f"--format must be phrasebank, csv or tfns, not {fmt!r}")
    mapping = _parse_label_map(label_map)
    settings = _settings(model=model, backend=backend, device=device)
    rows = read_any(data, fmt, mapping)  # type: ignore[arg-type]
    if split == "test":
        rows = research_split(rows).test
    if not len(rows):
        raise ScorerError(f"{data}: no labelled rows to evaluate")
    be = load_backend(settings.model, backend=settings.backend, device=settings.device,
                      max_length=settings.max_length, threads=settings.threads)
    started = time.perf_counter()
    result = metrics(rows.labels, predict_ids(be, rows.texts, settings.batch_max_size))
    result.update({"data": str(data), "split": split, "model_version": be.model_version,
                   "backend": be.name, "seconds": round(time.perf_counter() - started, 2)})
    typer.echo(json.dumps(result))


def _parse_label_map(text: str | None) -> dict[str, str] | None:
    from scorer.exceptions import ScorerError

    if not text:
        return None
    out: dict[str, str] = {}
    for item in text.split(","):
        if "=" not in item:
            raise ScorerError(f"--label-map item {item!r} is not 'name=label'")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def export(
    model: Annotated[Path | None, typer.Option(help="Model folder (FINSENT_MODEL).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Shared data folder (validation).")]
    = None,
    card: Annotated[
        bool, typer.Option("--card/--no-card", help="Re-evaluate and rewrite MODEL_CARD.md.")
    ] = True,
) -> None:
    """ONNX export + INT8 quantization; INT8 becomes the CPU default unless it loses > 0.5 pt."""
    from scorer.backends import WEIGHTS_FILE
    from scorer.exceptions import ScorerError
    from scorer.export import export_int8, unlabelled_texts, validation_set
    from scorer.model_card import write_card

    settings = _settings(model=model, data_dir=data_dir)
    if not (settings.model / WEIGHTS_FILE).is_file():
        raise ScorerError(f"no {WEIGHTS_FILE} in {settings.model} (FINSENT_MODEL / --model)")
    serving = export_int8(settings.model, validation_set(settings.data_dir),
                          *unlabelled_texts(settings.data_dir))
    if card:
        write_card(settings.model, settings.data_dir)
    typer.echo(json.dumps(serving))


def score(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts; none = read stdin lines.")]
    = None,
    model: Annotated[Path | None, typer.Option(help="Model folder (FINSENT_MODEL).")] = None,
    backend: Annotated[str | None, typer.Option(help=BACKEND_HELP)] = None,
    device: Annotated[str | None, typer.Option(help=DEVICE_HELP)] = None,
) -> None:
    """Label, probabilities and score = p_positive - p_negative, one JSON line per text."""
    from scorer.backends import load_backend

    settings = _settings(model=model, backend=backend, device=device)
    items = list(texts) if texts else [line.rstrip("\r\n") for line in sys.stdin]
    items = [t for t in items if t.strip()]
    be = load_backend(settings.model, backend=settings.backend, device=settings.device,
                      max_length=settings.max_length, threads=settings.threads)
    size = settings.batch_max_size
    for start in range(0, len(items), size):
        chunk = [t[: settings.max_text_chars] for t in items[start : start + size]]
        for text, s in zip(items[start : start + size], be.predict(chunk), strict=True):
            typer.echo(json.dumps({"text": text, **s.as_dict(),
                                   "model_version": be.model_version}))
