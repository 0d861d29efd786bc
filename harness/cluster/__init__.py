"""Runs spread over processes and machines: Ray Tune sweeps (one ordinary run per grid point) and Ray
Train trials whose run has several data-parallel workers. The rank context those workers train under (DDP
step, sharded eval, rank 0 writes, torchrun launch) is core/distributed.py, below, because the trainer and
evaluation use it at every world size. May import run and everything below it; never cli."""
