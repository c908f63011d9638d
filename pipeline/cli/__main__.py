"""`python -m pipeline.cli`: the `vast-pipeline` command from a checkout or a venv."""

import sys

from pipeline.cli import main

sys.exit(main())
