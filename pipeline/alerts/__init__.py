"""Alerts: webhook messages when an instance is down, money idles, credit runs out or
collection stops; once per transition, with a resolve, nothing lost.

Modules: `settings` (the `[alerts]` table and receivers), `engine` (state, transitions,
outbox, delivery, the alert log), `webhook` (HTTP without leaking URLs), `history_rules`
(`instance_down` from the Parquet history), `build_rules` (the cost rules from the
warehouse) and `hooks` (the calls the pipeline, Dagster and the CLI make).
"""
