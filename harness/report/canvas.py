"""A matplotlib figure outside pyplot, and a save that writes byte-identical PNG/PDF files on every rerun;
shared by every report figure module."""

from __future__ import annotations

from pathlib import Path

# Without these, matplotlib stamps the date and its version into every file and reruns differ.
_PNG_METADATA = {"Software": None}
_PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}


def _new_figure(width: float, height: float):
    """A figure outside pyplot: the Agg canvas, no global state, no GUI backend picked up."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, stem: Path) -> list[Path]:
    """PNG and PDF with the timestamp and version metadata removed, so reruns give identical bytes."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    fig.savefig(png, dpi=150, metadata=_PNG_METADATA)
    fig.savefig(pdf, metadata=_PDF_METADATA)
    return [png, pdf]
