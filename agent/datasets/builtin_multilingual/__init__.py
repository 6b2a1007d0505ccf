"""The built-in multilingual slice (data only; see ``make_builtin_multilingual.sh``): a few utterances in
German, Spanish, French and English with a ``language`` column, so that multilingual Whisper models report
WER/CER and language detection per language. A package so that wheels ship its files (as ``builtin``)."""
