"""Networks, and how a config becomes objects: the registered backbones (timm, named ones, the optional
mmpose ones behind their import shim), TaskModel (backbone + task head, stage taps hooked), pretrained
weights loaded all or nothing, and the factory that turns a run's config into its task, networks, method
and occlusion plan. May import core only."""
