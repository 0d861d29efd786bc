"""Face alignment (COFW / WFLW / 300W landmarks, embedded synthetic faces)."""

from tasks.face_alignment import task  # noqa: F401  (registers "face_alignment", "hrnetv2_*", "fan*")
