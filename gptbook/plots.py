"""Figures the book draws more than once: matrices as heatmaps, and the printable token.

Introduced in chapter 1 (the bigram table, attention masks); chapter 4 draws
attention maps with the same :func:`heatmap`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def printable(token: str) -> str:
    """A token as a readable label: space as ␣, newline as ⏎, other whitespace escaped."""
    return token.replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥")


def heatmap(
    ax,
    matrix: torch.Tensor,
    rows: Sequence[str] | None = None,
    cols: Sequence[str] | None = None,
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    cmap: str = "Blues",
    colorbar: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
):
    """Draw a 2-D ``matrix`` on ``ax`` with optional tick labels; returns the image.

    ``vmin``/``vmax`` fix the colour scale (e.g. 0 and 1 for masks and probabilities).
    """
    values = torch.as_tensor(matrix).detach().float().cpu()
    image = ax.imshow(values, cmap=cmap, aspect="auto", vmin=vmin, vmax=vmax)
    if rows is not None:
        ax.set_yticks(range(len(rows)), [printable(r) for r in rows], fontsize=8)
    if cols is not None:
        ax.set_xticks(range(len(cols)), [printable(c) for c in cols], fontsize=8)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(False)
    if colorbar is not None:
        ax.figure.colorbar(image, ax=ax, label=colorbar, fraction=0.046, pad=0.04)
    return image
