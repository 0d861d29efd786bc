"""Human pose estimation (COCO-17 keypoints)."""

from tasks.pose import task  # noqa: F401  (registers "pose")
