"""Tasks: each subpackage registers one task with the engine on import."""

from tasks import pose  # noqa: F401
