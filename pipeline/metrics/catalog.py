"""What `vast-pipeline metrics` exports: every metric once, with the model column it reads.

Why a table of declarations rather than code per metric: each figure a person sees is read
from one named model column (docs/semantics.md), so a metric is nothing but a name, a
meaning, its labels and that column. The exporter (`pipeline.metrics.collect`) turns these
rows into samples, and the docs' metrics table is checked against this list, so the two
cannot drift. Names follow Prometheus's conventions: one metric per meaning, base units
(`_seconds`, `_timestamp_seconds`, `_dollars`, `_dollars_per_hour`, `_ratio`), labels for
the dimensions and none that grows beyond the fleet itself.
"""

from __future__ import annotations

from dataclasses import dataclass

# The labels of a per-instance metric: who it is and where it runs (bounded by the fleet).
INSTANCE_LABELS = ("account", "instance_id", "label", "gpu_name", "host_id")
ACCOUNT_LABELS = ("account",)
MARKET_LABELS = ("gpu_name", "offer_type")


@dataclass(frozen=True)
class Metric:
    """One exported metric: `model`.`column` gives the value of one sample per row, the
    `labels` columns of the same row its labels. `only_where`: columns of which one must be
    true for the row to have a sample (the up metric has none while an instance starts)."""

    name: str
    kind: str  # "gauge" or "info" (the Prometheus type shown in # TYPE)
    help: str
    model: str
    column: str
    labels: tuple[str, ...] = ()
    only_where: tuple[str, ...] = ()
    # labels of a fixed value: two declarations of one name read two columns of one row
    # into one metric (the market's quantiles)
    const_labels: tuple[tuple[str, str], ...] = ()

    @property
    def source(self) -> str:
        """What it reads, as the docs' metrics table names it."""
        if self.model == ALERT_STATE:
            return f"alerts/state.json {self.column}"
        if self.model == PACKAGE:
            return f"pipeline.{self.column}"
        where = f" where {' or '.join(self.only_where)}" if self.only_where else ""
        return f"{self.model}.{self.column}{where}"


# Sources that are not a warehouse model: the alert state file and the package itself.
ALERT_STATE = "alert state"
PACKAGE = "package"

METRICS: tuple[Metric, ...] = (
    # -- per instance of each account's newest snapshot (fleet_now) --------------------
    Metric("vast_instance_up", "gauge",
           "1 when the instance is running as meant, 0 when it is down (the reliability "
           "models' definition); no sample while it starts or is not meant to run.",
           "fleet_now", "is_up", INSTANCE_LABELS, only_where=("is_up", "is_down")),
    Metric("vast_instance_gpus", "gauge", "GPUs of the instance.",
           "fleet_now", "num_gpus", INSTANCE_LABELS),
    Metric("vast_instance_burn_rate_dollars_per_hour", "gauge",
           "What the instance costs per hour now (GPU while billed plus storage).",
           "fleet_now", "burn_rate_per_hour", INSTANCE_LABELS),
    Metric("vast_instance_gpu_utilisation_ratio", "gauge",
           "GPU utilisation at the newest snapshot, 0 to 1.",
           "fleet_now", "gpu_util_fraction", INSTANCE_LABELS),
    Metric("vast_instance_idle", "gauge",
           "1 when the GPU is billed while under 5 % utilised (the idle rule), else 0.",
           "fleet_now", "gpu_idle", INSTANCE_LABELS),
    Metric("vast_instance_reliability2", "gauge",
           "Vast.ai's host reliability score (reliability2, 0 to 1) at the newest snapshot.",
           "fleet_now", "reliability2", INSTANCE_LABELS),
    # -- per account ---------------------------------------------------------------------
    Metric("vast_account_credit_balance_dollars", "gauge",
           "The account's credit as the newest snapshot reported it.",
           "account_now", "credit_balance", ACCOUNT_LABELS),
    Metric("vast_account_burn_rate_dollars_per_hour", "gauge",
           "What the account's listed instances cost per hour now.",
           "account_now", "burn_rate_per_hour", ACCOUNT_LABELS),
    Metric("vast_account_runway_seconds", "gauge",
           "How long the credit lasts at the current burn rate (no sample while nothing "
           "burns or the credit is unknown).",
           "account_now", "runway_seconds", ACCOUNT_LABELS),
    Metric("vast_account_snapshot_timestamp_seconds", "gauge",
           "When the newest snapshot the fleet metrics describe was taken (as of the last "
           "build).", "account_now", "snapshot_at", ACCOUNT_LABELS),
    Metric("vast_account_bill_fetched_timestamp_seconds", "gauge",
           "When a bill of the account was last fetched.",
           "collection_now", "last_bill_fetched_at", ACCOUNT_LABELS),
    Metric("vast_account_collection_failures", "gauge",
           "Collections of the account that failed in a row since its last success.",
           ALERT_STATE, "collections.<account>.failures", ACCOUNT_LABELS),
    Metric("vast_account_alerts_firing", "gauge",
           "Alerts firing now, by rule (account is empty for an alert about no account).",
           "alerts_firing_by_rule", "firing", ("account", "rule")),
    # -- the collector and the warehouse build -------------------------------------------
    Metric("vast_collector_last_success_timestamp_seconds", "gauge",
           "The account's newest successful snapshot (read live from the snapshot log): "
           "time() minus it is how stale its collection is.",
           "collection_now", "last_snapshot_at", ACCOUNT_LABELS),
    Metric("vast_warehouse_build_timestamp_seconds", "gauge",
           "When the warehouse was last built.", "build_info", "built_at"),
    Metric("vast_warehouse_build_duration_seconds", "gauge",
           "How long the last warehouse build ran (its models; not the final swap).",
           "build_info", "build_seconds"),
    # -- the market (account-less: the offer search's snapshots) ---------------------------
    Metric("vast_market_gpu_price_dollars_per_hour", "gauge",
           "What the market asks per GPU-hour in its newest snapshot, by GPU model, offer "
           "type (on-demand, bid) and statistic of the offers (p25, median).",
           "market_prices_now", "p25_per_gpu_hour", MARKET_LABELS,
           const_labels=(("statistic", "p25"),)),
    Metric("vast_market_gpu_price_dollars_per_hour", "gauge",
           "What the market asks per GPU-hour in its newest snapshot, by GPU model, offer "
           "type (on-demand, bid) and statistic of the offers (p25, median).",
           "market_prices_now", "median_per_gpu_hour", MARKET_LABELS,
           const_labels=(("statistic", "median"),)),
    Metric("vast_market_snapshot_timestamp_seconds", "gauge",
           "When the newest market snapshot was taken.",
           "market_history", "newest_snapshot_at"),
    Metric("vast_account_savings_dollars_per_month", "gauge",
           "What the account would save a month on the market's persistent cheaper offers "
           "(no sample until the market history spans the lookback).",
           "savings_by_account", "monthly_savings", ACCOUNT_LABELS),
    Metric("vast_pipeline_build", "info", "The vast-pipeline version serving the metrics.",
           PACKAGE, "__version__", ("version",)),
)


def metric(name: str) -> Metric:
    """The (first) declaration of the metric called `name`."""
    return next(m for m in METRICS if m.name == name)


def declarations() -> dict[str, list[Metric]]:
    """Each metric name with its declarations, in catalog order (most have one)."""
    out: dict[str, list[Metric]] = {}
    for m in METRICS:
        out.setdefault(m.name, []).append(m)
    return out


def exported_name(m: Metric) -> str:
    """The name its samples carry: an info metric's gain `_info`, as prometheus_client
    writes them."""
    return f"{m.name}_info" if m.kind == "info" else m.name
