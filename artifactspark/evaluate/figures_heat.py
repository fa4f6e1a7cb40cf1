"""The localisation figure (issue 12): heatmaps over the stretched image, one test CCD per class."""

from __future__ import annotations

import numpy as np

from .tiles import group_of


def fig_overlays(heat: dict, names: list[str], previews: dict, positions, path: str, per_row: int = 7) -> int:
    """One panel per class with a position on a CCD that has a preview: the arcsinh-stretched
    image (grey), the class's group map (colour, alpha by heat), its positions (cyan x) and the
    hottest tile (box). Returns the number of panels (0: nothing written)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if positions is None or not len(positions):
        return 0
    picks = []
    for cls, g in positions.groupby("cls", sort=True):
        key = next(((int(e), int(c)) for e, c in zip(g.expnum, g.ccdnum) if (int(e), int(c)) in previews), None)
        if key is not None and key in heat:
            picks.append((cls, key, g[(g.expnum == key[0]) & (g.ccdnum == key[1])]))
    if not picks:
        return 0
    n_rows = -(-len(picks) // per_row)
    fig, axes = plt.subplots(n_rows, per_row, figsize=(per_row * 1.9, n_rows * 3.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (cls, key, pts) in zip(axes.ravel(), picks):
        img = previews[key]
        lo, hi = np.percentile(img, [1, 99.5])
        stretched = np.arcsinh((img - lo) / max((hi - lo) / 10, 1e-6))
        g = group_of(cls)
        k = names.index(g) if g in names else 0
        m = heat[key][k]
        h, w = img.shape
        ax.imshow(stretched, cmap="gray", extent=(0, 2048, 4096, 0), aspect="auto")
        mm = m / m.max() if m.max() > 0 else m
        rgba = plt.get_cmap("inferno")(mm)
        rgba[..., 3] = 0.6 * mm
        ax.imshow(rgba, extent=(0, 2048, 4096, 0), aspect="auto", interpolation="nearest")
        tr, tc = np.unravel_index(int(np.argmax(m)), m.shape)
        t = 4096 // m.shape[0]
        ax.add_patch(Rectangle((tc * t, tr * t), t, t, fill=False, ec="lime", lw=1.2))
        ax.plot(pts.col, pts.row, "x", color="cyan", ms=4, mew=1)
        ax.set_title(f"{cls}\n{key[0]}/{key[1]} [{names[k]}]", fontsize=7)
        ax.set_xlim(0, 2048)
        ax.set_ylim(4096, 0)
    fig.suptitle("heatmaps (colour) over the stretched image; x: truth/report positions; box: hottest tile", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return len(picks)
