"""Measurement code of ``tools/benchmarks/``: mmclip side by side with
open_clip and transformers on the same architecture and inputs.

- :mod:`.peers`: the same CLIP built by each library, and their encoders;
- :mod:`.timing`: the interleaved best-of-N timer every row uses;
- :mod:`.flops`: model FLOPs and MFU;
- :mod:`.train_step`: the training-step rows;
- :mod:`.pipelines`: the rows that start from JPEG files (input pipeline,
  folder inference);
- :mod:`.data`: seeded synthetic captions and photo folders.

It measures mmclip through its public API, so it sits above
:mod:`mmclip.apis` (as ``tools/`` does); nothing in mmclip imports it.
open_clip and transformers are imported where they are used (the test
requirements have them).
"""
