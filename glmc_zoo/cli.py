"""The `glmc-zoo` command line. Each command parses, calls one library function and prints.

Exit codes: 0 success; 1 a run that partly failed (e.g. some images unreadable) or a failed
export check; 2 usage errors (bad option, unknown model, unusable input).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="GLMC long-tailed image classifiers: list, inspect, convert, train, evaluate, "
                       "export and predict.")


class Fmt(str, Enum):
    table = "table"
    json = "json"


class PredFmt(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


def _fail(msg: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {msg}", err=True)
    return typer.Exit(code)


def _user_errors() -> tuple[type[Exception], ...]:
    """The typed errors that mean the user's input was wrong (reported without a traceback)."""
    from glmc_zoo.hub import ModelLoadError
    from glmc_zoo.inference import ImageLoadError, InferenceError

    errors: list[type[Exception]] = [ModelLoadError, InferenceError, ImageLoadError, FileNotFoundError]
    try:
        from glmc_zoo.models.glmc_resnet import WeightsNotAvailableError

        errors.append(WeightsNotAvailableError)
    except ImportError:
        pass
    return tuple(errors)


def _table(rows: list[dict], cols: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in cols}
    line = lambda r: "  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols).rstrip()  # noqa: E731
    return "\n".join([line({c: c for c in cols}), line({c: "-" * widths[c] for c in cols}), *map(line, rows)])


# ---------------------------------------------------------------------------------------------
# list / info
# ---------------------------------------------------------------------------------------------


@app.command("list")
def list_cmd(
    pretrained: Annotated[bool, typer.Option("--pretrained", help="List every arch.tag weight set.")] = False,
    fmt: Annotated[Fmt, typer.Option("--format", help="table or json")] = Fmt.table,
) -> None:
    """Architectures, or with --pretrained every weight set: classes, reported top-1, availability."""
    import timm

    from glmc_zoo.models import GLMC_META, glmc_model_names

    rows = []
    names = glmc_model_names(pretrained=True) if pretrained else glmc_model_names()
    for name in names:
        cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=False)
        meta = GLMC_META.get(name) or GLMC_META.get(f"{name}.{cfg.tag}" if cfg and cfg.tag else name, {})
        rows.append(dict(name=name, num_classes=cfg.num_classes if cfg else None,
                         top1=(meta.get("measured") or meta.get("reported") or {}).get("top1"),
                         weights=meta.get("weights", "none"),
                         source=meta.get("reported_source") or ""))
    if fmt == Fmt.json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(_table(rows, ["name", "num_classes", "top1", "weights", "source"]))


@app.command()
def info(
    name: Annotated[str, typer.Argument(help="Architecture, arch.tag, local-dir:DIR or a weights folder.")],
    fmt: Annotated[Fmt, typer.Option("--format", help="table or json")] = Fmt.table,
) -> None:
    """Everything the config knows about a model or weight set."""
    import timm

    from glmc_zoo.hub import read_config
    from glmc_zoo.models import GLMC_META

    path = Path(name.removeprefix("local-dir:"))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise _fail(f"{path}: no config.json; a weights folder holds model.safetensors and config.json")
        data = read_config(path)
    else:
        cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=False) if timm.is_model(name.split(".")[0]) \
            and name.split(".")[0].startswith("glmc_") else None
        if cfg is None:
            raise _fail(f"unknown model {name!r}; `glmc-zoo list --pretrained` shows them all")
        full = f"{name.split('.')[0]}.{cfg.tag}" if cfg.tag else name
        data = dict(name=full, pretrained_cfg=cfg.to_dict(), glmc=GLMC_META.get(full, {}))
    if fmt == Fmt.json:
        typer.echo(json.dumps(data, indent=2, default=list))
        return
    flat = dict(data.get("pretrained_cfg", {}), **{k: v for k, v in data.items() if k != "pretrained_cfg"})
    for k, v in flat.items():
        if k == "label_names" and isinstance(v, (list, tuple)) and len(v) > 12:
            v = f"{list(v[:10])} ... ({len(v)} labels)"
        typer.echo(f"{k:>18}: {v}")


# ---------------------------------------------------------------------------------------------
# convert / push
# ---------------------------------------------------------------------------------------------


@app.command()
def convert(
    checkpoint: Annotated[Path, typer.Argument(help="The authors' ckpt.pth.tar (or a bare state dict).")],
    model: Annotated[str, typer.Option("--model", help="Architecture, e.g. glmc_resnet32.")],
    num_classes: Annotated[int, typer.Option("--num-classes", help="Classes of the checkpoint's heads.")],
    output: Annotated[Path, typer.Option("--output", help="Weights folder to write.")],
    tag: Annotated[str | None, typer.Option("--tag", help="Pretrained entry for preprocessing and labels, "
                                                          "e.g. cifar100_lt_if100.")] = None,
) -> None:
    """Convert a released GLMC checkpoint (read with weights_only=True) into the zoo's format."""
    from glmc_zoo.hub import CheckpointError, convert_checkpoint

    try:
        out = convert_checkpoint(checkpoint, model, num_classes, output, tag=tag)
    except CheckpointError as e:
        raise _fail(str(e)) from None
    typer.echo(f"wrote {out} (model.safetensors, config.json, README.md); load it with "
               f"timm.create_model('local-dir:{out}', pretrained=True)")


@app.command()
def push(
    folder: Annotated[Path, typer.Argument(help="A weights folder (model.safetensors + config.json).")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub repository, ORG/NAME.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and list, upload nothing.")] = False,
    private: Annotated[bool, typer.Option("--private")] = False,
) -> None:
    """Upload a weights folder to the Hugging Face Hub, after checking that it loads."""
    from glmc_zoo.hub import ModelLoadError, PushError, push_folder

    try:
        files = push_folder(folder, repo_id, dry_run=dry_run, private=private)
    except (ModelLoadError, PushError) as e:
        raise _fail(str(e)) from None
    verb = "would upload" if dry_run else "uploaded"
    for name, size in files:
        typer.echo(f"{verb} {name} ({size:,} bytes) -> {repo_id}")


# ---------------------------------------------------------------------------------------------
# predict / export
# ---------------------------------------------------------------------------------------------


@app.command()
def predict(
    sources: Annotated[list[str], typer.Argument(help="Image files, directories (recursed) and globs.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model reference or .onnx file "
                                                                    "(default: the bundled CIFAR-10-LT model).")] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto | torch | onnx")] = "auto",
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda")] = "auto",
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1)] = 5,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1)] = 64,
    fmt: Annotated[PredFmt, typer.Option("--format", help="table | json | jsonl | csv")] = PredFmt.table,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    tensorrt: Annotated[bool, typer.Option("--tensorrt", help="onnx on cuda: try TensorRT first.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
) -> None:
    """Classify images. Exit 0 if all were predicted, 1 if some failed (each reported), 2 on usage errors."""
    from glmc_zoo.inference import Predictor, expand_sources

    if backend not in ("auto", "torch", "onnx"):
        raise _fail(f"--backend {backend!r}: use auto, torch or onnx")
    files = expand_sources(sources)
    if not files:
        raise _fail("no input images (the directories given hold no image files)")
    try:
        predictor = Predictor(model, backend=backend, device=device, tensorrt=tensorrt)
    except _user_errors() as e:
        raise _fail(str(e)) from None
    typer.echo(f"model {predictor.backend.model_name} on {predictor.backend.name}/{predictor.device}", err=True)
    bar = None
    if len(files) > 1 and not no_progress and sys.stderr.isatty():
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(files), unit="img", file=sys.stderr)
        except ImportError:
            pass
    results = []
    for r in predictor.iter_predict(files, top_k=top_k, batch_size=batch_size):
        results.append(r)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    text = _format_predictions(results, fmt)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    else:
        typer.echo(text, nl=not text.endswith("\n"))
    failed = [r for r in results if r.error]
    for r in failed:
        typer.echo(f"error: {r.error}", err=True)
    if failed:
        typer.echo(f"{len(failed)} of {len(results)} inputs failed", err=True)
        raise typer.Exit(1)


def _format_predictions(results, fmt: PredFmt) -> str:
    if fmt == PredFmt.json:
        return json.dumps([r.to_dict() for r in results], indent=2) + "\n"
    if fmt == PredFmt.jsonl:
        return "".join(json.dumps(r.to_dict()) + "\n" for r in results)
    if fmt == PredFmt.csv:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["source", "rank", "label", "index", "score", "error"])
        for r in results:
            if r.error:
                w.writerow([r.source, "", "", "", "", r.error])
            for rank, p in enumerate(r.predictions, 1):
                w.writerow([r.source, rank, p["label"], p["index"], f"{p['score']:.6f}", ""])
        return buf.getvalue()
    rows = []
    for r in results:
        if r.error:
            rows.append(dict(source=r.source, label="ERROR", score="", top=r.error))
            continue
        best = r.predictions[0]
        others = ", ".join(f"{p['label']} {p['score']:.3f}" for p in r.predictions[1:])
        rows.append(dict(source=r.source, label=best["label"], score=f"{best['score']:.3f}", top=others))
    return _table(rows, ["source", "label", "score", "top"]) + "\n"


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="Registry name, arch.tag, hf-hub:, local-dir: or a folder.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")],
    opset: Annotated[int, typer.Option("--opset", min=11)] = 17,
    fp16: Annotated[bool, typer.Option("--fp16", help="Store weights and activations in float16.")] = False,
    batch_size: Annotated[str, typer.Option("--batch-size", help="A fixed batch size, or 'dynamic'.")] = "dynamic",
    verify_images: Annotated[list[Path] | None, typer.Option(
        "--verify-images", help="Real images (files or folders) for the check; default: the bundled samples.")] = None,
    fmt: Annotated[Fmt, typer.Option("--format")] = Fmt.table,
) -> None:
    """Export to one self-describing .onnx file, verified against PyTorch before it is kept."""
    from glmc_zoo.export.onnx import ExportError, export_onnx
    from glmc_zoo.inference import expand_sources
    from glmc_zoo.samples import sample_images

    if batch_size != "dynamic" and not batch_size.isdigit():
        raise _fail(f"--batch-size {batch_size!r}: give a positive integer or 'dynamic'")
    bs = None if batch_size == "dynamic" else int(batch_size)
    images = expand_sources([str(p) for p in verify_images]) if verify_images else [str(p) for p in sample_images()]
    try:
        report = export_onnx(model, output, opset=opset, fp16=fp16, batch_size=bs, verify_images=images)
    except ExportError as e:
        raise _fail(str(e), code=1) from None
    except _user_errors() as e:
        raise _fail(str(e)) from None
    if fmt == Fmt.json:
        typer.echo(json.dumps(dict(output=str(output), **report.to_dict()), indent=2))
    else:
        typer.echo(report.summary())
        typer.echo(f"wrote {output} ({output.stat().st_size:,} bytes)")


# ---------------------------------------------------------------------------------------------
# train / eval
# ---------------------------------------------------------------------------------------------


@app.command()
def train(
    config: Annotated[str | None, typer.Option("--config", "-c", help="A named config (see --list).")] = None,
    list_configs: Annotated[bool, typer.Option("--list", help="List the named configs and exit.")] = False,
    data_root: Annotated[str | None, typer.Option("--data-root", help="Dataset folder.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Run directory.")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="key=value, repeatable.")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Run directory or checkpoint.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N")] = "auto",
    download: Annotated[bool, typer.Option("--download", help="Download CIFAR if missing.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
) -> None:
    """Train GLMC from a named config (the released runs, or your own image folder)."""
    try:
        from glmc_zoo.training.configs import ConfigError, apply_overrides, get_config
        from glmc_zoo.training.configs import list_configs as names
        from glmc_zoo.training.data import DataError
        from glmc_zoo.training.loop import TrainError, command_line
        from glmc_zoo.training.loop import train as run
    except ImportError as e:
        raise _fail(f"training needs its extra: pip install 'glmc-zoo[train]' ({e})") from None
    if list_configs:
        for n in names():
            c = get_config(n)
            typer.echo(f"{n:<26} {c.model:<22} {c.dataset:<12} E={c.epochs} B={c.batch_size} lr={c.lr}  "
                       f"glmc-zoo train --config {n}")
        return
    if not config:
        raise _fail("give --config NAME (glmc-zoo train --list shows them)")
    try:
        cfg = apply_overrides(get_config(config), list(overrides or []) + ([f"data_root={data_root}"] if data_root
                                                                           else []))
        out = output or Path("runs") / cfg.name
        metrics = run(cfg, out, device=device, resume=resume, progress=not no_progress, download=download,
                      command=command_line())
    except (ConfigError, DataError, TrainError) as e:
        raise _fail(str(e)) from None
    if not metrics:  # a non-zero rank of a distributed run: rank 0 reports
        return
    if metrics.get("interrupted"):
        typer.echo(f"stopped at epoch {metrics['epoch'] + 1}, step {metrics['step']}; continue with "
                   f"--resume {out}", err=True)
        raise typer.Exit(130)
    typer.echo(json.dumps({k: metrics.get(k) for k in ("top1", "top5", "many", "medium", "few", "epoch")}))
    typer.echo(f"run directory: {out}; weights: {out / 'model'}", err=True)


@app.command("eval")
def eval_cmd(
    model: Annotated[str, typer.Argument(help="Model reference or weights folder.")],
    data_root: Annotated[Path, typer.Option("--data-root", help="Folder with test/<class>/ (or val/).")],
    per_class_limit: Annotated[int, typer.Option("--per-class-limit", help="First N images per class.")] = 0,
    device: Annotated[str, typer.Option("--device")] = "auto",
    fmt: Annotated[Fmt, typer.Option("--format")] = Fmt.table,
) -> None:
    """top-1, top-5, many/medium/few and per-class accuracy of a model on a test folder."""
    try:
        from glmc_zoo.training.data import DataError
        from glmc_zoo.training.evaluate import evaluate_model
    except ImportError as e:
        raise _fail(f"evaluation needs: pip install 'glmc-zoo[train]' ({e})") from None
    try:
        m = evaluate_model(model, data_root, per_class_limit=per_class_limit, device=device)
    except (DataError, *_user_errors()) as e:
        raise _fail(str(e)) from None
    m.pop("confusion", None)
    if fmt == Fmt.json:
        typer.echo(json.dumps(m, indent=2))
        return
    for k in ("top1", "top5", "many", "medium", "few"):
        if m.get(k) is not None:
            typer.echo(f"{k:>7}: {m[k]:.2f}")
    typer.echo(f"      n: {m['n']}")
    for name, acc in zip(m["classes"], m["per_class"]):
        typer.echo(f"  {name:>16}: {'-' if acc is None else f'{acc:.2f}'}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
