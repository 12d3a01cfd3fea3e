"""Run timm's own `train.py` on a GLMC architecture (plain fine-tuning: timm's losses, not GLMC's).

timm's `train.py` builds its model with `timm.create_model(args.model, ...)`, which knows the GLMC
architectures only once `glmc_zoo` has been imported. This launcher imports it, then runs the given
`train.py` as a script with the rest of the command line, unchanged:

    git clone https://github.com/huggingface/pytorch-image-models timm-src
    python examples/timm_train.py timm-src/train.py --data-dir DATA --model glmc_resnet32_w16 --pretrained \
        --model-kwargs training_heads=False --num-classes 10 --input-size 3 32 32 --device cpu ...
    # DistributedDataParallel, one process per GPU (or CPU rank over gloo):
    torchrun --nproc_per_node 2 examples/timm_train.py timm-src/train.py ... --model-kwargs training_heads=False

`training_heads=False` keeps only the inference head `fc_cb`, so that every parameter gets a gradient
from `forward()`, which DDP requires (README, "Models": `training_heads=False`). To train with GLMC's own losses, use
`glmc-zoo train` instead.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

USAGE = ("usage: python examples/timm_train.py PATH/TO/train.py [train.py's arguments]\n"
         "give the train.py of a clone of https://github.com/huggingface/pytorch-image-models")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        sys.exit(USAGE)
    script = Path(argv[1])
    if script.suffix != ".py" or not script.is_file():
        sys.exit(f"{argv[1]}: not a Python script that exists\n{USAGE}")

    import glmc_zoo  # noqa: F401  (registers the GLMC architectures with timm)

    sys.argv = [str(script), *argv[2:]]
    sys.path.insert(0, str(script.resolve().parent))  # as `python train.py` would: its folder is importable
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
