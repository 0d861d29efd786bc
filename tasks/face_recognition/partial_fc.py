"""Partial FC (An et al., arcface_torch): margin logits over a per-batch sample of the class centres.

With 100k+ training identities the (batch x identities) cosine matrix, its margin logits, softmax and
their gradients, and the normalised copy of the whole weight matrix dominate a step's memory. Partial FC
keeps every positive centre of the batch and fills the rest of `ceil(sample_rate * identities)` with
random negatives, so those tensors shrink to the sample. The weight matrix itself stays whole (each
network's own parameter, so each D-Slope network keeps its own centres; only the sampled rows receive
gradient in a step).

Run `python -m tasks.face_recognition.partial_fc` to measure one step's head memory at 100k identities.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F


def sample_count(num_classes: int, sample_rate: float) -> int:
    """Centres kept per batch: ceil(sample_rate * identities), at least one."""
    return max(1, min(num_classes, math.ceil(sample_rate * num_classes)))


def sample_centres(
    labels: torch.Tensor, num_classes: int, num_sample: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose the centres of one batch: all positives, then random negatives up to `num_sample`.

    Returns:
        (sorted indices of the kept centres, the labels as positions in that index). When the batch holds
        more distinct identities than `num_sample`, exactly the positives are kept.
    """
    positives = torch.unique(labels)
    if positives.numel() < num_sample:
        priority = torch.rand(num_classes, device=labels.device, generator=generator)
        priority[positives] = 2.0  # above any random draw: positives always make the cut
        index = torch.topk(priority, num_sample).indices.sort().values
    else:
        index = positives
    return index, torch.searchsorted(index, labels)


def sampled_cosine(
    embedding: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, num_sample: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Cosines between the normalised embeddings and the sampled normalised centres.

    Returns:
        (B, K) cosines, (B,) labels remapped into the K columns, (K,) the kept centre indices.
    """
    index, remapped = sample_centres(labels, weight.shape[0], num_sample, generator)
    cosine = F.linear(F.normalize(embedding.float()), F.normalize(weight[index].float()))
    return cosine, remapped, index


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


def measure_head_memory(
    num_classes: int, sample_rate: float, *, batch: int = 128, embedding_size: int = 512
) -> dict[str, float]:
    """Peak memory of one ArcFace head step (forward, loss, backward) on this process's device.

    CUDA: `max_memory_allocated` above what the weight, its gradient and the inputs hold before the step.
    CPU: the process's peak resident set (`ru_maxrss`) above the resident set before the step; run it in
    a fresh process (as `__main__` does) so that no earlier peak hides this one.
    """
    import resource

    from tasks.face_recognition.head import margin_logits

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(num_classes, embedding_size, device=device) * 0.01)
    weight.grad = torch.zeros_like(weight)  # the optimizer keeps it between steps either way
    embedding = torch.randn(batch, embedding_size, device=device, requires_grad=True)
    labels = torch.randint(0, num_classes, (batch,), device=device)
    num_sample = sample_count(num_classes, sample_rate)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _rss_bytes()
    if sample_rate < 1.0:
        cosine, target, _ = sampled_cosine(embedding, weight, labels, num_sample)
    else:
        cosine, target = F.linear(F.normalize(embedding), F.normalize(weight)), labels
    logits = margin_logits(cosine, target, kind="arcface", scale=64.0, margin=0.5)
    F.cross_entropy(logits, target).backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return {
        "device": device.type,
        "identities": num_classes,
        "sample_rate": sample_rate,
        "centres_per_batch": num_sample,
        "batch": batch,
        "weight_mib": weight.numel() * 4 / 2**20,
        "step_peak_mib": peak / 2**20,
    }


def main() -> None:  # pragma: no cover  (a measurement, run by hand; see the README)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=100_000)
    parser.add_argument("--sample-rate", type=float, default=None, help="one rate (default: 1.0 and 0.1)")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    if args.sample_rate is None:  # each rate in a fresh process: ru_maxrss is a lifetime peak
        import subprocess
        import sys

        for rate in (1.0, 0.1):
            cmd = [sys.executable, "-m", __spec__.name, "--identities", str(args.identities),
                   "--batch", str(args.batch), "--sample-rate", str(rate)]  # fmt: skip
            subprocess.run(cmd, check=True)
        return
    print(measure_head_memory(args.identities, args.sample_rate, batch=args.batch))


if __name__ == "__main__":
    main()
