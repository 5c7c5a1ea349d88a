"""Recipes of the GPU-sized experiments (notebooks 03 and 04): the original schedules.

``full`` is the paper's schedule (configs/cifar10_ood.yml: 180 AE epochs, 10 NAE
epochs; configs/celeba64_ood.yml: 30 AE epochs, 15 NAE epochs), meant for a GPU; train
it in chunks with ``python -m nae train CONFIG --out RUN --max-minutes M`` and
``--resume``.  Nothing here is published yet (see the notebooks).
"""
from __future__ import annotations

from . import Recipe

RECIPES = {
    "cifar10_ood_nae": Recipe(
        config="cifar10_ood", eval_n=None,
        ood=["ConstantGray", "FashionMNIST", "SVHN", "CelebA", "Noise", "Constant", "MNIST", "CIFAR100", "ImageNet32"],
        description="NAE on CIFAR-10 (original z32gn schedule)"),
    "celeba64_ood_nae": Recipe(
        config="celeba64_ood", eval_n=None, ood=["CelebA64Gray", "ConstantGray", "CIFAR10", "Noise"],
        description="NAE on CelebA 64x64 (original z64gr_h32g8 schedule; our CelebA is a subset)"),
}
