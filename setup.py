"""The one thing pyproject.toml cannot say: the package list.

Every package found under pipeline/ and assets/, plus `pipeline.sql`, which
`[tool.setuptools.package-dir]` maps to the top-level sql/ so the models ship inside the
wheel (see pipeline/resources.py). A static list would silently drop new subpackages.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["pipeline*", "assets*"]), "pipeline.sql"])
