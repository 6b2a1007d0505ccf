"""Recipes: each seed benchmark (``../shared/seeds``) as one command, ``edgebench-agent recipe run NAME``.

- :mod:`.spec` reads a recipe file (TOML, one per seed in :file:`builtin/`) and layers its options;
- :mod:`.execute` runs its steps, each exactly as ``edgebench-agent run`` would (stored, streamed);
- :mod:`.reports` turns the results into the tables and plots the seed document shows.
"""
