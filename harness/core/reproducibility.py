"""What a CPU result depends on beyond the config: the intra-op thread count and the vector unit.

Floating-point sums are not associative, and torch's CPU kernels split them by thread and vectorise them by
the CPU's instruction set, so the same run under `OMP_NUM_THREADS=1` and `=2`, or on an AVX2 and an AVX-512
machine, ends with different weights. Every record and every pretraining checkpoint says which of these made
it; runs are bitwise comparable only when both match.
"""

from __future__ import annotations

import torch


def cpu_arithmetic() -> dict[str, object]:
    """{"threads": intra-op thread count, "cpu_capability": the vector unit torch dispatches to}."""
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # older torch
        capability = "unknown"
    return {"threads": torch.get_num_threads(), "cpu_capability": capability}
