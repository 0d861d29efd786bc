"""Tasks: each subpackage registers one task with the engine on import.

Nothing is imported here: `harness.core.registry` imports `tasks.<name>` for the one task a run names, and
every subpackage only when all names are listed, so validating a pose config never loads the face tasks.
"""
