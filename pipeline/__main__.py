import gc

from pipeline.cli import main

code = main()
# Python's exit searches the whole heap (TensorFlow, Keras, MLflow and all a run made) for garbage
# cycles. Frozen, the heap is only freed, not searched; nothing the pipeline writes waits for a
# garbage collection (files are closed, runs ended, by then).
gc.freeze()
raise SystemExit(code)
