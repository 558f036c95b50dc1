"""The model card: ``metrics.json`` (machine-readable) and ``MODEL_CARD.md`` (for people).

Metrics come from the shipped backends loaded exactly as serving loads them, so the card
describes what users get. The test split is evaluated here once, after selection, for
reporting only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from scorer.backends import INT8_FILE, WEIGHTS_FILE, load_backend, read_metrics
from scorer.data import LabelledSet, allagree_rows, phrasebank_split, tfns_sets
from scorer.evaluate import metrics, predict_ids
from scorer.exceptions import ScorerError

BERT_BASE = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12}

LICENCE = """\
The training data include the Financial PhraseBank (Malo et al., 2014), licensed
CC BY-NC-SA 3.0. The fine-tuned weights are derived from it, so treat them as carrying the
same terms:

- **Non-commercial**: you may use, share and adapt the model for research and other
  non-commercial purposes only; commercial use needs permission from the data's authors (or a
  model retrained on data you may use commercially: `finsent train --data-dir ...`).
- **Share-alike**: if you distribute the model or a derivative, do so under the same licence.
- **Attribution**: credit the Financial PhraseBank: P. Malo, A. Sinha, P. Korhonen, J. Wallenius,
  P. Takala, "Good debt or bad debt: Detecting semantic orientations in economic texts",
  JASIST 65(4), 2014.

The tweet set (twitter-financial-news-sentiment) is MIT licensed; the base model
all-MiniLM-L6-v2 and the distillation teacher's base all-mpnet-base-v2 are Apache-2.0. The
finsent code is Apache-2.0.
"""


def flops_per_token(config: dict[str, Any], seq_len: int = 128) -> float:
    """Forward FLOPs per token of a BERT-style encoder: 2 x (matmul weights) + attention scores."""
    h, f, n = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    per_layer = 2 * (4 * h * h + 2 * h * f) + 2 * 2 * seq_len * h
    return float(n * per_layer)


def _eval(backend: Any, data: LabelledSet) -> dict[str, Any]:
    started = time.perf_counter()
    m = metrics(data.labels, predict_ids(backend, data.texts))
    m["seconds"] = round(time.perf_counter() - started, 2)
    return m


def evaluate_folder(
    model_dir: Path, data_dir: Path,
    backends: tuple[str, ...] = ("torch", "torch-bf16", "onnx-int8"),
) -> dict[str, Any]:
    """Per backend: PhraseBank validation, test, AllAgree rows of test; tfns validation tweets."""
    split = phrasebank_split(data_dir)
    sets = {
        "phrasebank_validation": split.validation,
        "phrasebank_test": split.test,
        "phrasebank_test_allagree": allagree_rows(data_dir, split.test),
        "tfns_valid": tfns_sets(data_dir)[1],
    }
    out: dict[str, Any] = {}
    for name in backends:
        if name == "onnx-int8" and not (Path(model_dir) / INT8_FILE).is_file():
            continue
        be = load_backend(model_dir, backend=name, device="cpu")
        out[name] = {key: _eval(be, data) for key, data in sets.items()}
    return out


def model_facts(model_dir: Path) -> dict[str, Any]:
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    files = {p.name: p.stat().st_size for p in Path(model_dir).iterdir() if p.is_file()}
    ours, bert = flops_per_token(cfg), flops_per_token(BERT_BASE)
    return {
        "architecture": cfg.get("model_type"),
        "layers": cfg["num_hidden_layers"], "hidden": cfg["hidden_size"],
        "flops_per_token_seq128": ours, "bert_base_flops_per_token_seq128": bert,
        "flops_ratio_vs_bert_base": round(ours / bert, 4),
        "files_bytes": files, "total_bytes": sum(files.values()),
    }


def write_card(model_dir: Path, data_dir: Path) -> dict[str, Any]:
    """Evaluates the folder, updates metrics.json and renders MODEL_CARD.md; returns metrics."""
    model_dir = Path(model_dir)
    if not (model_dir / WEIGHTS_FILE).is_file():
        raise ScorerError(f"{model_dir} has no {WEIGHTS_FILE}; nothing to describe")
    meta = read_metrics(model_dir)
    meta["evaluation"] = evaluate_folder(model_dir, data_dir)
    (model_dir / "metrics.json").write_text(json.dumps(meta, indent=2) + "\n")
    (model_dir / "MODEL_CARD.md").write_text("")  # counted in the size below
    meta["model"] = model_facts(model_dir)
    (model_dir / "metrics.json").write_text(json.dumps(meta, indent=2) + "\n")
    (model_dir / "MODEL_CARD.md").write_text(render(meta))
    return meta


def _pct(x: Any) -> str:
    return "-" if x is None else f"{float(x):.3f}"


def _stages(meta: dict[str, Any]) -> str:
    """Earlier stages when this model was fine-tuned from a finsent model (``--base``)."""
    lines, rec = [], meta.get("base_model_record")
    while rec:
        lines.append(
            f"Fine-tuned from {rec.get('name')} {rec.get('version')} (trained from "
            f"{rec.get('base')}, {rec.get('training_seconds')} s, data "
            f"`{json.dumps(rec.get('data'), sort_keys=True)}`, recipe "
            f"`{json.dumps(rec.get('recipe'), sort_keys=True)}`).\n"
        )
        rec = rec.get("base_model_record")
    return "\n".join(lines)


def _tweets(meta: dict[str, Any]) -> int:
    rec: dict[str, Any] | None = meta
    while rec:
        n = (rec.get("data") or {}).get("tfns_train")
        if n:
            return int(n)
        rec = rec.get("base_model_record")
    return 0


def _stage_note(meta: dict[str, Any]) -> str:
    data = meta.get("data") or {}
    if meta.get("base_model_record") and not data.get("tfns_train"):
        return " (stage 1; stage 2 is PhraseBank only)"
    return ""


def _reproduce(meta: dict[str, Any]) -> str:
    cmds = meta.get("reproduce")
    if not cmds:
        return ""
    return "Commands that built this model:\n\n```\n" + "\n".join(cmds) + "\n```\n"


def _distillation(meta: dict[str, Any]) -> str:
    """The teacher this model was distilled from, when it was (``--teacher``)."""
    teacher = meta.get("teacher_record")
    if not teacher:
        return ""
    recipe = meta.get("recipe", {})
    val = teacher.get("validation_at_selection") or {}
    ours = (meta.get("model") or {}).get("flops_per_token_seq128")
    theirs = teacher.get("flops_per_token_seq128")
    cost = f", {theirs / ours:.1f}x this model's FLOPs per token" if ours and theirs else ""
    size = (f"a {teacher['layers']}-layer, {teacher['hidden']}-hidden "
            f"{teacher.get('architecture')} encoder{cost}" if teacher.get("layers") else "")
    data = ", ".join(sorted((teacher.get("data") or {}).keys())) or "?"
    own_labels = recipe.get("include_tfns") and not recipe.get("distill_labelled_tweets")
    tweets = "; the labelled tweets learned from their own labels only" if own_labels else ""
    return f"""
### Distillation

Distilled from a fine-tuned teacher, **{teacher.get('base')}** ({size}), fine-tuned here on
{data} ({teacher.get('training_seconds')} s; recipe
`{json.dumps(teacher.get('recipe'), sort_keys=True)}`), teacher validation accuracy
{_pct(val.get('accuracy'))}, macro-F1 {_pct(val.get('macro_f1'))}. The teacher's
temperature-{recipe.get('distill_temperature')} probabilities were the target for
{_pct(recipe.get('distill_alpha'))} of the loss on the rows it taught (the rest: their
labels){tweets}. The teacher is not shipped and costs nothing at inference.
"""


def _selection(meta: dict[str, Any]) -> str:
    """The recipe candidates compared on validation, when recorded (``recipe_selection``)."""
    sel = meta.get("recipe_selection")
    if not sel:
        return ""
    rows = "\n".join(
        f"| {c['run']} | {c['recipe']} | {c['val_accuracy']} | {c['val_macro_f1']} | "
        f"{c.get('tfns_valid_macro_f1', '-')} |" for c in sel.get("candidates", [])
    )
    return f"""
### Recipe selection (validation only)

{sel.get('rule', '')}

| run | recipe | PhraseBank val accuracy | val macro-F1 | tfns valid macro-F1 |
|---|---|---|---|---|
{rows}
"""


def _int8_candidates(serving: dict[str, Any]) -> str:
    """The INT8 variants ``finsent export`` compared, when recorded."""
    cands = serving.get("int8_candidates") or {}
    if not cands:
        return ""
    rows = "\n".join(
        f"| {name} | {_pct(c.get('validation_accuracy'))} | "
        f"{c.get('label_disagreement', '-')} | {c.get('mean_abs_score_change', '-')} | "
        f"{c.get('bytes', 0) / 1e6:.1f} |" for name, c in cands.items()
    )
    return f"""
INT8 variants compared (label disagreement and mean |score change| against torch on unlabelled
training texts):

| variant | validation accuracy | label disagreement | mean abs score change | MB |
|---|---|---|---|---|
{rows}
"""


def render(meta: dict[str, Any]) -> str:
    ev = meta.get("evaluation", {})
    serving = meta.get("serving", {})
    facts = meta.get("model", {})
    train = meta.get("training", {})
    recipe = meta.get("recipe", {})
    rows = []
    for backend, sets in ev.items():
        for key in ("phrasebank_validation", "phrasebank_test", "phrasebank_test_allagree",
                    "tfns_valid"):
            m = sets.get(key, {})
            f1 = m.get("f1", {})
            rows.append(
                f"| {backend} | {key} | {m.get('n')} | {_pct(m.get('accuracy'))} | "
                f"{_pct(m.get('macro_f1'))} | {_pct(f1.get('negative'))} | "
                f"{_pct(f1.get('neutral'))} | {_pct(f1.get('positive'))} |"
            )
    data = meta.get("data", {})
    pb = data.get("phrasebank_50agree", {})
    size_mb = facts.get("total_bytes", 0) / 1e6
    hist = "\n".join(
        f"| {h['epoch']} | {h['step']} | {h['train_loss']} | {h['val_accuracy']} | "
        f"{h['val_macro_f1']} | {h['elapsed_s']} |" for h in train.get("history", [])
    )
    return f"""# {meta.get('name', 'model')} {meta.get('version', '')}

Three-way financial sentiment (negative / neutral / positive) for news sentences and finance
posts, fine-tuned from {meta.get('base', '?')} (6-layer MiniLM, 384 hidden, 22.7M parameters).
Outputs the three probabilities; finsent's score is `p_positive - p_negative`.

## Serving

- CPU default backend: **{serving.get('cpu_default', 'torch')}**
  ({serving.get('int8_scheme', 'no INT8 export')}); on a CPU with AMX (Intel Sapphire
  Rapids and later) `auto` picks **torch-bf16** instead, faster there and as accurate as fp32.
  {serving.get('rule', '')}; INT8 minus torch validation accuracy:
  {serving.get('int8_accuracy_change', '-')}.
{"- Release: " + meta["release_note"] if meta.get("release_note") else ""}
{_int8_candidates(serving)}
- CUDA: torch fp16. Weights are stored as fp16 safetensors and cast to fp32 for CPU torch.
- Cost: {facts.get('flops_ratio_vs_bert_base', '-')} of BERT-base's FLOPs per token
  ({facts.get('flops_per_token_seq128', 0) / 1e6:.1f} M vs
  {facts.get('bert_base_flops_per_token_seq128', 0) / 1e6:.1f} M at 128 tokens).
- Files: {size_mb:.1f} MB in total.

## Data and split

- Financial PhraseBank v1.0, `Sentences_50Agree.txt`: {pb.get('train')} train /
  {pb.get('validation')} validation / {pb.get('test')} test rows. Split: {pb.get('split', '')}.
  This is FinBERT's split (`scripts/datasets.py`), so the test figures compare with FinBERT
  (accuracy 0.86, macro-F1 0.84).
- Tweets (twitter-financial-news-sentiment, train file): {_tweets(meta)} rows
  (bearish -> negative, bullish -> positive) in training{_stage_note(meta)}.
- Model selection (early stopping, recipe choice) used the validation split only; the test
  split was evaluated once for this card.

## Metrics

| backend | set | n | accuracy | macro-F1 | F1 neg | F1 neu | F1 pos |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

`phrasebank_test_allagree` = the test rows whose sentence all annotators agreed on.
`tfns_valid` = the tweet set's own validation file (its train file was used for training).

## Training

Recipe: `{json.dumps(recipe, sort_keys=True)}`

Training time {train.get('seconds', '-')} s, {train.get('steps', '-')} optimizer steps on
{json.dumps(train.get('hardware', {}))}.

| epoch | step | train loss | val accuracy | val macro-F1 | elapsed s |
|---|---|---|---|---|---|
{hist}
{_distillation(meta)}
{_selection(meta)}
{_stages(meta)}
{_reproduce(meta)}
Reproduce: `finsent train` with the recipe above (see `finsent train --help`); for a two-stage
model, first train the stage-1 model, then pass it as `--base`.

## Licence

{LICENCE}
## Limits

English only; trained on news sentences and finance tweets. Sentences where annotators
disagree (half of 50Agree) are hard for any model; expect lower accuracy on long documents
(truncated to the serving max length) and on sarcasm.
"""
