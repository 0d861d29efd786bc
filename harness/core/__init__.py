"""The shared vocabulary every layer speaks: the typed config, the registries, the Task contract,
occlusion (patch library, occluded twins), errors, atomic I/O and safe loading, build-once caches and
digests, precision, batches, progress bars, the rank context of data-parallel runs (a no-op at world size
1), a run dir's file names and its checkpoint check, and result records (fields, roles, portable paths,
source state, CPU arithmetic). It imports nothing else of harness/; every subpackage may import it."""
