"""Publishing a weights folder on the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

import torch

from glmc_zoo._meta import HF_ORG, __version__
from glmc_zoo.card import model_card
from glmc_zoo.errors import PushError, first_line
from glmc_zoo.hub import CARD_NAME, create_model
from glmc_zoo.registry import WeightSet


def push_folder(folder: str | Path, repo_id: str, dry_run: bool = False, private: bool = False,
                commit_message: str | None = None) -> list[tuple[str, int]]:
    """Upload a weights folder to the Hub as `repo_id` (the user's usual `hf auth login`), after
    checking that it loads and its logits are finite. Returns (file name, bytes) of what is (or,
    with `dry_run`, would be) uploaded."""
    folder = Path(folder)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PushError(f"--repo-id {repo_id!r}: expected ORG/NAME, e.g. {HF_ORG}/glmc_resnet32.cifar100_lt_if100")
    model = create_model(f"local-dir:{folder}", pretrained=True)
    size = model.pretrained_cfg["input_size"]
    with torch.inference_mode():
        logits = model(torch.zeros(1, *size))
    if logits.shape[1] != model.num_classes or not torch.isfinite(logits).all():
        raise PushError(f"{folder}: the model loads but gives non-finite or mis-shaped logits {tuple(logits.shape)}")
    files = sorted((f.name, f.stat().st_size) for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
    card = model_card(WeightSet.from_folder(folder), repo_id=repo_id)  # names the repo pushed to
    files = [(n, len(card.encode()) if n == CARD_NAME else size) for n, size in files]
    if dry_run:
        return files
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(library_name="glmc-zoo", library_version=__version__)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                          commit_message=commit_message or f"Upload {repo_id} with glmc-zoo {__version__}",
                          ignore_patterns=[".*", CARD_NAME])
        api.upload_file(path_or_fileobj=card.encode(), path_in_repo=CARD_NAME, repo_id=repo_id, repo_type="model",
                        commit_message=f"Model card for {repo_id}")
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise PushError(f"upload of {folder} to {repo_id} failed: {first_line(e)}. Log in with "
                        f"`hf auth login` and check the network and your write access to {repo_id.split('/')[0]}.") from e
    return files
