"""File-based (ImageNet-sized) datasets with the reference's two-view augmentation (section 4)."""

from __future__ import annotations

import torch
from glmc_zoo.training.data import LongTailedData
from PIL import Image


class TwoViewFiles(torch.utils.data.Dataset):
    """Image files -> (view1, view2, label), each view independently augmented."""

    def __init__(self, paths: list[str], targets, transform, two_views: bool = True):
        self.paths, self.targets, self.transform, self.two_views = paths, targets, transform, two_views

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        with Image.open(self.paths[i]) as im:
            im = im.convert("RGB")
        if self.two_views:
            return self.transform(im), self.transform(im), int(self.targets[i])
        return self.transform(im), int(self.targets[i])


def file_datasets(data: LongTailedData, image_size: int):
    """Train (RandomResizedCrop, ColorJitter(0.4, 0.4, 0.4, 0), RandomGrayscale(0.2), GaussianBlur
    sigma [0.1, 2] with p=0.5, flip) and test (Resize(size / 0.875), CenterCrop) datasets."""
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
    test_tf = T.Compose([T.Resize(int(round(image_size / 0.875))), T.CenterCrop(image_size), T.ToTensor(), norm])
    return (TwoViewFiles(data.train.paths, data.train.targets, train_tf),
            TwoViewFiles(data.test.paths, data.test.targets, test_tf, two_views=False))
