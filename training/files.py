"""File-based (ImageNet-sized) datasets with the reference's two-view augmentation (section 4)."""

from __future__ import annotations

import torch

from glmc_zoo.images import load_image
from glmc_zoo.preprocess import Preprocess
from glmc_zoo.training.data import LongTailedData


class TwoViewFiles(torch.utils.data.Dataset):
    """Image files -> (view1, view2, label), each view independently augmented. Files are decoded
    as `predict` decodes them (EXIF rotation; alpha, palette, 16-bit and CMYK to RGB)."""

    def __init__(self, paths: list[str], targets, transform, two_views: bool = True):
        self.paths, self.targets, self.transform, self.two_views = paths, targets, transform, two_views

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: int | tuple[int, int]):
        """`i`, or `(i, seed)`: the views then draw from torch's CPU generator seeded with `seed` (restored
        afterwards), so an image's augmentation does not depend on which worker or process made it."""
        i, seed = item if isinstance(item, tuple) else (item, None)
        im = load_image(self.paths[i])
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            if self.two_views:
                return self.transform(im), self.transform(im), int(self.targets[i])
            return self.transform(im), int(self.targets[i])


class _Tensor:
    """A numpy preprocessing as a transform returning a tensor (picklable, for DataLoader workers)."""

    def __init__(self, pre: Preprocess):
        self.pre = pre

    def __call__(self, im) -> torch.Tensor:
        return torch.from_numpy(self.pre(im))


def file_datasets(data: LongTailedData, image_size: int, crop_pct: float = 0.875, interpolation: str = "bilinear"):
    """Train (RandomResizedCrop, ColorJitter(0.4, 0.4, 0.4, 0), RandomGrayscale(0.2), GaussianBlur
    sigma [0.1, 2] with p=0.5, flip) and test datasets. The test side uses the deployment
    preprocessing (`glmc_zoo.inference.Preprocess`: resize the short side to floor(size / crop_pct),
    centre crop) with the crop and interpolation of the model's own config (the trainer passes them; 0.875
    and bilinear are timm's ImageNet defaults), so a run's numbers are what `predict` and `eval` compute
    on the same files."""
    from torchvision import transforms as T

    norm = T.Normalize(data.mean, data.std)
    k = int(0.1 * image_size) // 2 * 2 + 1  # odd kernel, about 10% of the side (as SimCLR / MoCo)
    train_tf = T.Compose([
        T.RandomResizedCrop(image_size),
        T.ColorJitter(0.4, 0.4, 0.4, 0.0),
        T.RandomGrayscale(p=0.2),
        T.RandomApply([T.GaussianBlur(k, sigma=(0.1, 2.0))], p=0.5),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        norm,
    ])
    pre = Preprocess((3, image_size, image_size), tuple(data.mean), tuple(data.std), crop_pct=crop_pct,
                     interpolation=interpolation)
    test_tf = _Tensor(pre)
    return (TwoViewFiles(data.train.paths, data.train.targets, train_tf),
            TwoViewFiles(data.test.paths, data.test.targets, test_tf, two_views=False))
