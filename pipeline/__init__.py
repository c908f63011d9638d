"""vast-pipeline: keep the history of Vast.ai GPU instances; answer cost and reliability questions.

Framework-free modules (Dagster lives in `assets/`):
- config: settings from the environment and an optional config file
- errors: the error types whose messages are shown to users as one sentence
- simulator, fleet: an embedded Vast.ai API simulator served over real HTTP
- client: the polite HTTP client for the Vast.ai API
- secrets, raw, flatten, storage, history: landing zone and Parquet history
- collect: one snapshot of one account, end to end
- warehouse: DuckDB SQL models from `sql/`
- reports, focus: cost and reliability reports, FinOps FOCUS export
- cli: the `vast-pipeline` command
"""

__version__ = "0.1.0"
