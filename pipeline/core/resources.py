"""Where the files shipped with vast-pipeline are, in a checkout and in an installed wheel.

`sql/` sits at the top of the repository (the source of truth analysts read and edit);
`pyproject.toml` maps it to the package `pipeline.sql`, so a wheel carries it inside
`site-packages/pipeline/sql` and an editable install (`make install`) resolves that same
package to the checkout's `sql/`. Everything that needs a shipped file asks here, never
`Path(__file__).parent.parent`, which only holds in a checkout.
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path

SQL_PACKAGE = "pipeline.sql"
DEFINITIONS_MODULE = "assets.definitions"  # the Dagster code location, importable anywhere


def sql_dir() -> Path:
    """The directory of the SQL models (`*.sql`), wherever the package is installed."""
    return Path(str(files(SQL_PACKAGE)))


def dagster_dev_command(home: Path | str, dagster_home: Path | str) -> str:
    """A `dagster dev` command line that loads the definitions from any directory.

    `-m` imports the installed code location, so it needs neither a checkout nor
    `workspace.yaml` (which `make dagster` uses in a checkout).
    """
    bin_dir = Path(sys.executable).parent  # the tools installed beside this interpreter
    return (f"VAST_PIPELINE_HOME={home} DAGSTER_HOME={dagster_home} "
            f"{bin_dir / 'dagster'} dev -m {DEFINITIONS_MODULE}")
