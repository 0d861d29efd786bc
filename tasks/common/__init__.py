"""Code shared by tasks, registering nothing: the keypoint-heatmap toolkit (`heatmap`, `heatmap_model`) and
the top-down crop dataset (`topdown`) that pose and face alignment are thin layers on.

A task may import from here; no task imports another task.
"""
