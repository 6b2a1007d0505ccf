"""The built-in recipe files (package data): copy one, edit it, run it with ``recipe run FILE.toml``."""
