"""Matplotlib figures as embedded PNG images (``data:`` URIs, nothing external)."""

from __future__ import annotations

import base64
import io
import math
from typing import Any

from gaelp_bayes.report.html import esc

__all__ = ["DPI", "figure_html", "grid", "png_data_uri", "pyplot"]

#: Resolution of embedded images: sharp on a laptop, small files.
DPI = 90


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def png_data_uri(fig: Any) -> str:
    """Render ``fig`` to PNG, close it, and return a ``data:image/png;base64,...`` URI."""
    plt = pyplot()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def figure_html(fig: Any, alt: str, caption: str = "") -> str:
    """``<figure>`` with the embedded image and an optional caption (both escaped)."""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f"<figure><img src='{png_data_uri(fig)}' alt='{esc(alt)}'>{cap}</figure>"


def grid(n: int, ncols: int = 3, panel: tuple[float, float] = (3.6, 2.6), **kw: Any):
    """``fig, axes`` for ``n`` small multiples (unused axes removed); ``axes`` is flat."""
    plt = pyplot()
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), squeeze=False, **kw
    )
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.remove()
    return fig, flat[:n]
