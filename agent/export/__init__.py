"""Exporting models to other runtimes' formats (ONNX, TFLite), cached in the user cache directory."""
