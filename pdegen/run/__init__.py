"""Stage 3, the run: per-sample seeds, ordering and batches (`plan`), one batch solved on a
worker (`batch`), the engines that decide where batches run (`engines`: serial, Dask, MPI),
and `generate`, which drives a whole run with its lock (`lock`) and progress (`progress`)."""
