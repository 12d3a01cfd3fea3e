"""An epoch's batches: the sample plan, and the batcher that turns it into augmented views.

The plan is drawn for the global batch (all ranks together); each rank takes its slice. For
in-memory data the augmentation's random draws are made for the whole global batch too and then
sliced, so two ranks see exactly the images and augmentations a single process would.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from glmc_zoo.training.data import LongTailedData, apply_crop_flip, draw_crop_flip, normalize


def epoch_plan(n: int, batch_size: int, sample_w: torch.Tensor, seed: int, epoch: int,
               world: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The global (uniform, rebalanced) index batches of `epoch`.

    Uniform: a permutation of the N training images. Rebalanced: N draws with replacement,
    P(i) proportional to the class weight of image i (a WeightedRandomSampler). A last batch too
    small to give each of `world` ranks an image is dropped, so that all ranks take the same
    number of steps.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    rebal = torch.multinomial(sample_w, n, replacement=True, generator=g)
    plan = []
    for s in range(0, n, batch_size):
        u = perm[s:s + batch_size]
        if len(u) < world:
            break
        plan.append((u, rebal[s:s + batch_size][: len(u)]))  # the rebalanced batch is cut to the uniform one's size
    return plan


def rank_slice(b: int, rank: int = 0, world: int = 1) -> slice:
    """Rank `rank`'s part of a global batch of `b` (as `torch.tensor_split`: sizes differ by at most one)."""
    q, r = divmod(b, world)
    start = rank * q + min(rank, r)
    return slice(start, start + q + (rank < r))


Views = tuple[torch.Tensor, torch.Tensor]


def eval_preprocessing(model_cfg: dict, data: LongTailedData) -> dict:
    """The evaluation preprocessing of a run, decided in one place, the model's config (which the saved model
    carries to `predict` and `eval`): its crop and interpolation for image files; small images (<= 64 px,
    decoded into memory) are used whole, crop 1.0, as CIFAR's."""
    return dict(crop_pct=1.0 if data.in_memory else float(model_cfg.get("crop_pct") or 0.875),
                interpolation=str(model_cfg.get("interpolation") or "bilinear"))


class Batcher:
    """Turns the plan's index batches into `(views_u, views_r, y_u, y_r)` for this rank: two
    independently augmented, normalised views (each (b, 3, S, S) float) of the uniform and the
    rebalanced batch, and their one-hot targets (b, C).

    In-memory data: the uint8 images live on the training device and are augmented there in one
    batched op per view. File data: the reference's ImageNet-style pipeline, in DataLoader workers
    (`workers` > 0, at most one per CPU) or in this process, each image's views drawn from a seed of
    its own (see `epoch`).
    """

    def __init__(self, data: LongTailedData, image_size: int, workers: int, device: torch.device,
                 rank: int = 0, world: int = 1, eval_cfg: dict | None = None):
        self.data, self.device, self.rank, self.world = data, device, rank, world
        self.workers = min(workers, _cpus())  # more DataLoader workers than CPUs only add contention (and a warning)
        self.num_classes = len(data.classes)
        self.targets = torch.as_tensor(data.train.targets)
        self.mean = torch.tensor(data.mean, device=device)
        self.std = torch.tensor(data.std, device=device)
        if data.in_memory:
            self.train_u8 = torch.from_numpy(data.train.images).permute(0, 3, 1, 2).contiguous().to(device)
            self.test_u8 = torch.from_numpy(data.test.images).permute(0, 3, 1, 2).contiguous().to(device)
        else:
            from glmc_zoo.training.files import file_datasets

            self.train_ds, self.test_ds = file_datasets(data, image_size, **(eval_cfg or {}))

    def epoch(self, plan: list[tuple[torch.Tensor, torch.Tensor]], first: int, generator: torch.Generator,
              aug_seed: int = 0) -> Iterator[tuple[Views, Views, torch.Tensor, torch.Tensor]]:
        """Steps `first`, `first` + 1, ... of the epoch `plan`. In-memory augmentation draws from
        `generator`; file data's from a seed per (`aug_seed`, step, batch, place in the global batch), so
        that a run resumed mid-epoch, or split over ranks, or read by any number of workers augments
        every image as one uninterrupted process does."""
        steps = [(u, r, rank_slice(len(u), self.rank, self.world)) for u, r in plan[first:]]  # u, r: same size
        if self.data.in_memory:
            for u, r, part in steps:
                yield self._views(u, part, generator), self._views(r, part, generator), \
                    self._onehot(u[part]), self._onehot(r[part])
            return
        seeded = [[_seeded(idx, part, (aug_seed, first + n, k)) for k, idx in enumerate((u, r))]
                  for n, (u, r, part) in enumerate(steps)]
        uniform = self._file_views([su for su, _ in seeded])
        rebalanced = self._file_views([sr for _, sr in seeded])
        for (u, r, part), views_u, views_r in zip(steps, uniform, rebalanced):
            yield views_u, views_r, self._onehot(u[part]), self._onehot(r[part])

    def _onehot(self, idx: torch.Tensor) -> torch.Tensor:
        return F.one_hot(self.targets[idx], self.num_classes).float().to(self.device)

    def _views(self, idx: torch.Tensor, part: slice, generator: torch.Generator) -> Views:
        """Global batch `idx` -> this rank's `part` of its two augmented views (in-memory data)."""
        x = self.train_u8[idx[part].to(self.device)]
        out = []
        for _ in range(2):
            off, flip = draw_crop_flip(len(idx), generator)
            out.append(normalize(apply_crop_flip(x, off[:, part], flip[part]), self.mean, self.std))
        return out[0], out[1]

    def _file_views(self, batches: list[list[tuple[int, int]]]) -> Iterator[Views]:
        """(index, seed) batches -> two augmented views each, in DataLoader workers or in this process."""
        if self.workers == 0:
            for batch in batches:
                v1, v2, _ = zip(*(self.train_ds[item] for item in batch))
                yield torch.stack(v1).to(self.device), torch.stack(v2).to(self.device)
            return
        from torch.utils.data import DataLoader

        loader = DataLoader(self.train_ds, batch_sampler=batches, num_workers=self.workers,
                            pin_memory=self.device.type == "cuda", persistent_workers=False)
        for v1, v2, _ in loader:
            yield v1.to(self.device, non_blocking=True), v2.to(self.device, non_blocking=True)

    def test_batches(self, batch_size: int = 500):
        """(normalised images, labels) over the test split, in order."""
        if self.data.in_memory:
            y = self.data.test.targets
            for i in range(0, len(y), batch_size):
                yield normalize(self.test_u8[i:i + batch_size], self.mean, self.std), y[i:i + batch_size]
            return
        from torch.utils.data import DataLoader

        yield from DataLoader(self.test_ds, batch_size=batch_size // 4, num_workers=self.workers)


def _seeded(idx: torch.Tensor, part: slice, key: tuple[int, int, int]) -> list[tuple[int, int]]:
    """This rank's `part` of a global index batch as (index, augmentation seed) pairs; the seed depends
    on `key` (aug_seed, step, uniform 0 / rebalanced 1) and the image's place in the global batch only."""
    base = ((key[0] * 1_000_003 + key[1]) * 2 + key[2]) * 1_048_576
    return [(int(idx[j]), (base + j) % 2**63) for j in range(part.start, part.stop)]


def _cpus() -> int:
    """CPUs this process may use."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
