"""OpenAI Whisper: weight sources, the CTranslate2 -> Hugging Face converter, greedy decoding and the
PyTorch model.

Nothing here imports torch at package import: ``weights``, ``ct2_convert`` and ``decoding`` need only
numpy (model listings and ``--help`` stay fast on a Raspberry Pi). ``torch_model`` is imported by the torch
runtime alone.
"""
