"""The model card (`README.md` of a weights folder): a Hugging Face `ModelCard` with timm's library tag, the
dataset, licence, citation and a `model-index` whose metrics say whether they were measured here (final
epoch) or reported by the authors."""

from __future__ import annotations

from glmc_zoo._meta import HF_ORG
from glmc_zoo.registry import WeightSet

HF_DATASETS = {"cifar10": "uoft-cs/cifar10", "cifar100": "uoft-cs/cifar100", "imagenet_lt": "ILSVRC/imagenet-1k",
               "inat2018": "inaturalist-2018"}
_CITATION = """@inproceedings{du2023glmc,
  title={Global and Local Mixture Consistency Cumulative Learning for Long-tailed Visual Recognitions},
  author={Du, Fei and Yang, Peng and Jia, Qi and Nan, Fengtao and Chen, Xiaoting and Yang, Yun},
  booktitle={CVPR}, year={2023}}"""
#: The hyper-parameters a card lists from the run's resolved config.
_RECIPE_KEYS = ("model", "dataset", "imbalance_factor", "split", "seed", "epochs", "batch_size", "lr", "momentum",
                "weight_decay", "schedule", "resample_weighting", "label_weighting", "contrast_weight", "mix_beta",
                "normalization", "amp", "stage", "maxnorm_thresh", "maxnorm_every", "maxnorm_bn", "cb_beta")


def _no_local_paths(text: str) -> str:
    """Absolute file-system paths (this machine's, meaningless on the Hub) replaced by their last part."""
    import re

    return re.sub(r"(?<![\w:/.])(?:\.{1,2})?/(?:[^\s'\"`/]+/)+([^\s'\"`/]*)", r"<local>/\1", text)


def _card_dataset(ws: WeightSet) -> str | None:
    ds = ws.provenance.get("hf_dataset") or ws.provenance.get("dataset")
    if ds == "imagefolder":  # the trainer's default image folder is the CIFAR-10 JPEG copy
        cfg = ws.provenance.get("train_config") or {}
        ds = "cifar10" if not cfg.get("data_root") and cfg.get("model", "").startswith("glmc_resnet32") else None
    return HF_DATASETS.get(ds, ds) if ds else None


def model_card(ws: WeightSet, repo_id: str | None = None) -> str:
    """A Hub model card (huggingface_hub's `ModelCard`: YAML metadata with a `model-index`, then
    markdown) from a weight set's record (`WeightSet`, as a weights folder's config.json holds it). Metrics
    say whether they were measured here or reported by the authors; the recipe is the run's resolved config;
    no local paths."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    name, prov = ws.name, ws.provenance
    repo = repo_id or f"{HF_ORG}/{name}"
    kind, metrics = ws.metrics_kind, ws.metrics
    dataset = _card_dataset(ws)
    evals = []
    if metrics.get("top1") is not None and dataset:
        note = "measured by glmc-zoo at the final epoch" if kind == "measured" else \
            f"reported by the authors ({ws.metrics_source or 'paper / README'})"
        evals = [EvalResult(task_type="image-classification", dataset_type=dataset, dataset_name=dataset,
                            metric_type="accuracy", metric_name=f"top-1 {key} ({note})" if key != "top1"
                            else f"top-1 accuracy ({note})", metric_value=float(metrics[k]))
                 for k, key in (("top1", "top1"), ("many", "many-shot"), ("medium", "medium-shot"),
                                ("few", "few-shot")) if metrics.get(k) is not None]
    data = ModelCardData(library_name="timm", license="mit", pipeline_tag="image-classification",
                         tags=["image-classification", "timm", "glmc", "long-tailed"],
                         datasets=[dataset] if dataset else None, model_name=name if evals else None,
                         eval_results=evals or None)
    lines = [f"# {name}", "",
             "A GLMC (Global and Local Mixture Consistency cumulative learning, CVPR 2023) classifier. "
             "Inference uses the rebalanced head `fc_cb`.", ""]
    if metrics:
        lines += [f"## {kind.capitalize()} accuracy", "", "| metric | value (%) |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in metrics.items() if isinstance(v, (int, float))]
        if ws.metrics_source:
            lines += ["", str(ws.metrics_source)]
        lines.append("")
    lines += _per_class_lines(ws)
    train_cfg = prov.get("train_config") or {}
    if train_cfg:
        lines += ["## Recipe", "", "The resolved training config of the run:", "", "| key | value |", "|---|---|"]
        lines += [f"| {k} | {train_cfg[k]} |" for k in _RECIPE_KEYS if k in train_cfg]
        lines.append("")
    if ws.recipe:
        lines += ["Reproduces: " + str(ws.recipe), ""]
    for key, title in (("command", "Command"), ("training_time", "Training time"), ("precision", "Precision"), ("data", "Data")):
        if prov.get(key):
            body = f"```\n{prov[key]}\n```" if key == "command" else str(prov[key])
            lines += [f"## {title}", "", body, ""]
    if prov.get("converted_from"):
        lines += ["## Provenance", "", f"Converted with `glmc-zoo convert` from `{prov['converted_from']}`.", ""]
    first = prov.get("first_stage")
    if first:  # a second stage (GLMC + MaxNorm): the model it started from
        m = first.get("metrics") or {}
        score = f", measured top-1 {m['top1']:.2f}" if m.get("top1") is not None else ""
        mn = prov.get("maxnorm") or {}
        lines += ["## First stage", "", f"A second stage (GLMC + MaxNorm, docs/maxnorm.md) started from `{first.get('init')}`"
                  f"{score}; only `fc_cb` was trained"
                  + (f", its rows held within L2 norm {mn['radius']:.4f} (threshold {mn.get('thresh')}, projected every "
                     f"{mn.get('every')})" if mn.get("radius") is not None else "") + "."]
        if first.get("command"):
            lines += ["", f"The first stage's command: `{first['command']}`"]
        lines.append("")
    lines += ["## Usage", "", "```python", "import glmc_zoo, timm",
              f"model = timm.create_model('hf-hub:{repo}', pretrained=True).eval()", "```", "",
              "## Citation", "", "```bibtex", _CITATION, "```", ""]
    card = ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n{{ body }}\n",
                                   body="\n".join(lines))
    return _no_local_paths(str(card))


def _per_class_lines(ws: WeightSet) -> list[str]:
    """The card's per-class table (fc_cb, with each class's training images) and the plain head's numbers,
    from the record's `per_class` / `plain_head` (weights trained by glmc-zoo)."""
    lines = []
    per_class, counts = ws.per_class or {}, ws.class_counts or ()
    if per_class:
        lines += ["## Per-class accuracy", "", "Top-1 of each class (`fc_cb`, same evaluation):", "",
                  "| class | training images | top-1 (%) |", "|---|---|---|"]
        lines += [f"| {c} | {counts[i] if i < len(counts) else '-'} | {'-' if a is None else f'{a:.2f}'} |"
                  for i, (c, a) in enumerate(per_class.items())]
        lines.append("")
    plain = ws.plain_head or {}
    if plain:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in plain.items())
        lines += [f"The plain head `fc` (trained alongside, not used for inference), same evaluation: {parts}.", ""]
    return lines
