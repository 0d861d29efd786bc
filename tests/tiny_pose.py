"""The tiny pose configuration shared by tests (a plain module: a nested conftest.py cannot shadow it)."""

# A tiny, fast pose configuration: small synthetic set, small crops, a few steps.
TINY_POSE = [
    "data.synthetic_train_images=12",
    "data.synthetic_val_images=4",
    "data.input_size=[96,64]",
    "model.backbone=hrnet_w18_small",
    "train.batch_size=4",
    "train.eval_batch_size=8",
    "train.num_workers=0",
    "train.epochs=1",
    "train.max_steps=2",
    "occlusion.max_patches=50",
    # The default starts from the embedded pretraining checkpoint: a tiny one here (built once per cache).
    "pretrain.steps=2",
    "pretrain.images=6",
    "pretrain.batch_size=4",
]
