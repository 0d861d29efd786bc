"""Face recognition (identity embeddings, LFW-style verification)."""

from tasks.face_recognition import task  # noqa: F401  (registers "face_recognition")
