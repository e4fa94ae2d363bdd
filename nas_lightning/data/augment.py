"""Batched image augmentation on the device that holds the batch.

Per-sample Python transforms cost more than a small child's training step
on a CPU; these work on a whole uint8 or float batch at once, on any device.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def random_crop(x: torch.Tensor, padding: int) -> torch.Tensor:
    """Pad by ``padding`` (zeros) and crop back at a random offset per sample."""
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror each sample left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, length: int) -> torch.Tensor:
    """Zero one ``length`` x ``length`` square per sample (DeVries & Taylor 2017).

    The square's centre is uniform over the image, so it may be clipped at
    the border, as in the reference implementation.
    """
    if length <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), device=x.device)
    cx = torch.randint(0, w, (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = ((ys - cy).abs() <= length // 2) & ((xs - cx).abs() <= length // 2)
    if length % 2 == 0:
        inside &= (ys - cy < length // 2) & (xs - cx < length // 2)
    return x * (~inside)[:, None].to(x.dtype)
