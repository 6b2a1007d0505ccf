"""The built-in speech set (data only; see ``make_builtin.sh`` and ``edgebench.agent.datasets.loader``).

This file exists so that setuptools treats the folder as a package and ships its FLAC/TSV files as
package data in wheels; without it, ``find_packages`` skips the folder and an installed agent has no
built-in set.
"""
