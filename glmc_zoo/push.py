"""Publishing a weights folder on the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

import torch

from glmc_zoo._meta import HF_ORG, __version__
from glmc_zoo.card import model_card
from glmc_zoo.errors import PushError, first_line
from glmc_zoo.hub import CARD_NAME, WEIGHTS_FOLDER_FILES, create_model
from glmc_zoo.registry import WeightSet


def push_folder(folder: str | Path, repo_id: str, dry_run: bool = False, private: bool = False,
                commit_message: str | None = None) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """Upload a weights folder to the Hub as `repo_id` (the user's usual `hf auth login`), after
    checking that it loads and its logits are finite. Returns (file name, bytes) of what is (or,
    with `dry_run`, would be) uploaded, and (name, reason) of what is left out (`upload_plan`)."""
    folder = Path(folder)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PushError(f"--repo-id {repo_id!r}: expected ORG/NAME, e.g. {HF_ORG}/glmc_resnet32.cifar100_lt_if100")
    model = create_model(f"local-dir:{folder}", pretrained=True)
    size = model.pretrained_cfg["input_size"]
    with torch.inference_mode():
        logits = model(torch.zeros(1, *size))
    if logits.shape[1] != model.num_classes or not torch.isfinite(logits).all():
        raise PushError(f"{folder}: the model loads but gives non-finite or mis-shaped logits {tuple(logits.shape)}")
    sending, excluded = upload_plan(folder)
    card = model_card(WeightSet.from_folder(folder), repo_id=repo_id)  # names the repo pushed to
    files = [(n, len(card.encode()) if n == CARD_NAME else size) for n, _, size in sending]
    if dry_run:
        return files, excluded
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(library_name="glmc-zoo", library_version=__version__)
    # exactly the files the dry run lists: each added by name (no folder walk that would pick up more)
    ops = [CommitOperationAdd(path_in_repo=n, path_or_fileobj=card.encode() if n == CARD_NAME else str(path))
           for n, path, _ in sending]
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.create_commit(repo_id=repo_id, repo_type="model", operations=ops,
                          commit_message=commit_message or f"Upload {repo_id} with glmc-zoo {__version__}")
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise PushError(f"upload of {folder} to {repo_id} failed: {first_line(e)}. Log in with "
                        f"`hf auth login` and check the network and your write access to {repo_id.split('/')[0]}.") from e
    return files, excluded


def upload_plan(folder: Path) -> tuple[list[tuple[str, Path, int]], list[tuple[str, str]]]:
    """What a push sends and what it leaves out, with the reason: only a weights folder's own files
    (`WEIGHTS_FOLDER_FILES`), each a regular file inside the folder; a link (it could lead anywhere: a key,
    /etc/shadow), a hidden file, a subfolder or any other file is never sent."""
    sending, excluded = [], []
    for f in sorted(folder.iterdir()):
        if f.is_symlink():
            excluded.append((f.name, f"a link (to {f.resolve()}): links are never sent"))
        elif f.name.startswith("."):
            excluded.append((f.name, "hidden"))
        elif f.is_dir():
            excluded.append((f.name + "/", "a folder: a weights folder has no subfolders"))
        elif f.name not in WEIGHTS_FOLDER_FILES:
            excluded.append((f.name, f"not part of a weights folder ({', '.join(sorted(WEIGHTS_FOLDER_FILES))})"))
        elif f.is_file():
            sending.append((f.name, f, f.stat().st_size))
        else:
            excluded.append((f.name, "not a regular file"))
    if CARD_NAME not in {n for n, _, _ in sending}:
        sending.append((CARD_NAME, folder / CARD_NAME, 0))  # the card is made for the repo, from the record
    return sorted(sending), excluded
