"""Mixed precision: which autocast dtype applies on which device, in one place.

`train.amp` switches it on, `train.amp_dtype` picks float16 (CUDA only, with a gradient scaler against
underflow) or bfloat16 (CUDA or CPU, float32's exponent range, so no scaler). float16 requested on the
CPU falls back to full precision; the run record says which precision was used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Precision:
    device_type: str
    dtype: torch.dtype | None  # None: full precision (float32)

    @classmethod
    def resolve(cls, amp: bool, amp_dtype: str, device: torch.device) -> Precision:
        dtype = DTYPES[amp_dtype] if amp else None
        if dtype is torch.float16 and device.type != "cuda":
            return cls.full(device)
        return cls(device.type, dtype)

    @classmethod
    def full(cls, device: torch.device) -> Precision:
        """float32 throughout: what runs when no precision is given."""
        return cls(device.type, None)

    @property
    def name(self) -> str:
        return "float32" if self.dtype is None else f"amp-{str(self.dtype).removeprefix('torch.')}"

    @property
    def needs_scaler(self) -> bool:
        return self.dtype is torch.float16

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)
