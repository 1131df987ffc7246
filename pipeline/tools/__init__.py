"""Tools around the pipeline: make's stage graph (stages), reading the store (report, ui and the
tracking server), benchmarks (bench) and batch prediction with a registered model (predict)."""
