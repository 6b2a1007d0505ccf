"""Map the top-level folders onto namespaced import names.

The repository keeps the data path visible (``agent/``, ``models/``, ``collector/``) while the installed
import names are ``edgebench.agent``, ``edgebench.models`` and ``edgebench.collector`` so that nothing
installs a bare ``agent`` or ``models`` module into site-packages. pyproject.toml cannot express a
find-and-rename, hence this file.
"""

from setuptools import find_packages, setup

ROOTS = {"agent": "edgebench.agent", "models": "edgebench.models", "collector": "edgebench.collector"}

packages: list[str] = []
for folder, namespace in ROOTS.items():
    packages.append(namespace)
    packages.extend(f"{namespace}.{sub}" for sub in find_packages(folder))

setup(packages=packages, package_dir={ns: folder for folder, ns in ROOTS.items()})
