"""The one thing pyproject.toml cannot say: the package list.

Every package found under pipeline/ and assets/, plus the two folders of data files that
ship as packages of their own (declared, since they have no `__init__.py`, or setuptools
warns at every install that they are importable but not configured):
- `pipeline.sql`, which `[tool.setuptools.package-dir]` maps to the top-level sql/ so the
  models ship inside the wheel (see pipeline/core/resources.py);
- `pipeline.reports.templates`, the report templates.
A static list would silently drop new subpackages.
"""

from setuptools import find_packages, setup

DATA_PACKAGES = ["pipeline.sql", "pipeline.reports.templates"]

setup(packages=[*find_packages(include=["pipeline*", "assets*"]), *DATA_PACKAGES])
