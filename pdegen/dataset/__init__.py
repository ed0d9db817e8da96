"""Stage 4, the dataset on disk: atomic HDF5 shards and the index (`shards`), the
framework-free loader (`loader`), field statistics (`statistics`), train/valid/test splits
(`splits`), verification (`check`), the dataset card (`card`), figures (`show`) and exports to
other formats (`export`)."""
