"""The SQL models, one per `*.sql` file; this marker makes sql/ the package `pipeline.sql`.

pyproject.toml maps this folder into the package so the models ship inside the wheel;
`pipeline.resources.sql_dir()` finds them in a checkout and in an installed package alike.
"""
