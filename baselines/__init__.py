"""Baseline methods, written once against the method contract; importing registers them."""

from baselines import clean, distill, occ_aug  # noqa: F401
