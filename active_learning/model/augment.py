"""Augmentation for training and test-time augmentation, batched on the device that trains.

Training draws per-image random translations (zero fill, like ``shifted``) and, for recipes that allow them,
horizontal flips; both are whole-batch tensor operations (one slice per distinct offset, not one per image), so
they run on the GPU when the batch lives there. Test-time augmentation averages the probabilities over every
shift of up to ``tta_px`` pixels, and over the mirrored copies too when the recipe trains with flips.
"""

from __future__ import annotations

import numpy as np

from active_learning.errors import DataError


def random_translate(batch, shift: int, generator):
    """Each image of ``batch`` (N, C, H, W) moved by a random whole-pixel offset of up to ``shift`` (zero fill)."""
    import torch

    if shift <= 0:
        return batch
    n, _, h, w = batch.shape
    padded = torch.nn.functional.pad(batch, (shift, shift, shift, shift))
    offsets = torch.randint(0, 2 * shift + 1, (n, 2), generator=generator)
    codes = (offsets[:, 0] * (2 * shift + 1) + offsets[:, 1]).to(batch.device)
    out = torch.empty_like(batch)
    for code in torch.unique(codes).tolist():  # at most (2 shift + 1)^2 slices, whatever the batch size
        dy, dx = divmod(int(code), 2 * shift + 1)
        rows = (codes == code).nonzero().flatten()
        out[rows] = padded[rows, :, dy : dy + h, dx : dx + w]
    return out


def random_flip(batch, generator):
    """Each image of ``batch`` mirrored left-right with probability 1/2."""
    import torch

    mirror = (torch.rand(len(batch), generator=generator) < 0.5).to(batch.device)
    return torch.where(mirror.view(-1, 1, 1, 1), batch.flip(3), batch)


def tta_shifts(tta_px: int) -> list[tuple[int, int]]:
    """The (dy, dx) shifts that test-time augmentation averages over: every one of up to ``tta_px`` pixels."""
    return [(dy, dx) for dy in range(-tta_px, tta_px + 1) for dx in range(-tta_px, tta_px + 1)]


def tta_views(tta_px: int, flip: bool) -> list[tuple[int, int, bool]]:
    """(dy, dx, mirrored) of every copy test-time augmentation averages over."""
    mirrors = (False, True) if flip else (False,)
    return [(dy, dx, m) for m in mirrors for dy, dx in tta_shifts(tta_px)]


def tta_description(tta_px: int, flip: bool = False) -> str:
    """Test-time augmentation in words, e.g. "averaged over 25 shifts of up to 2 px"."""
    shifts = f"{(2 * tta_px + 1) ** 2} shifts of up to {tta_px} px"
    if not flip:
        return f"averaged over {shifts}" if tta_px else "plain (no test-time augmentation)"
    if not tta_px:
        return "averaged over each image and its mirror image"
    return f"averaged over {len(tta_views(tta_px, flip))} copies: {shifts} and their mirror images"


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``images`` (N, C, H, W) moved ``dy`` pixels down and ``dx`` right, the uncovered border filled with zeros."""
    h, w = images.shape[2:]
    if abs(dy) >= h or abs(dx) >= w:
        raise DataError(f"A shift of ({dy}, {dx}) pixels moves {h}x{w} images out of the frame.")
    out = np.zeros_like(images)
    out[:, :, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = \
        images[:, :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    return out


def view_of(images: np.ndarray, dy: int, dx: int, mirrored: bool) -> np.ndarray:
    """One test-time copy of ``images``: shifted, then mirrored left-right when asked."""
    out = images if dy == dx == 0 else shifted(images, dy, dx)
    return np.ascontiguousarray(out[..., ::-1]) if mirrored else out
