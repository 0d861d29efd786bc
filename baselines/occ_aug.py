"""Occlusion-augmented baseline: one network trained on D-Slope's own occluded twins.

The fair ablation of D-Slope: the same patches, the same placement and the same share of clean pairs
(`occlusion.clean_fraction`), but a single network and no mutual learning. If D-Slope beats this, the
gain comes from dual-sample learning, not from seeing occluded images.
"""

from __future__ import annotations

from baselines.clean import Clean
from harness.core.registry import METHODS


@METHODS.register("occ_aug")
class OcclusionAugmented(Clean):
    """One network; its input is the twin (which is the clean image for about a third of pairs)."""

    needs_twin = True
    role = "baseline"
    clean_network = None  # its network sees occluded twins
    input_key = "twin"
