"""Human pose estimation (COCO, MPII, CrowdPose, OCHuman layouts) and the C-COCO / C-MPII builders."""

from tasks.pose import benchmark, task  # noqa: F401  (registers "pose", "c-coco", "c-mpii")
