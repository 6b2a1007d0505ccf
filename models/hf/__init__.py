"""Generic Hugging Face models, named ``hf:<model-id-or-path>``: causal LMs and Whisper-compatible speech
models beside the built-in ASR zoo (see :mod:`edgebench.models.hf.spec`)."""
