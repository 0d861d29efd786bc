"""Tasks: each subpackage registers one task with the engine on import."""

from tasks import (
    face_alignment,  # noqa: F401
    face_recognition,  # noqa: F401,E402
    pose,  # noqa: F401
)
