"""Costs as a FinOps FOCUS 1.2 cost-and-usage dataset (Parquet or CSV): one row per row of
the warehouse's `spend_items` (the best-known spend per UTC day, contract and item: billed
where a bill is stored, estimated where it is not yet), so BilledCost over a window sums to
`spend_daily.total_cost` of the same window.

This module maps columns and formats; every figure (cost, list cost and rate, quantity,
hours) is a `spend_items` column. Billed rows (`x_CostSource` = 'billed'): one per bill
item (GPU, storage, download, upload, other); estimated rows (`x_CostSource` =
'estimated', `x_IsEstimate`): one per instance-day and component (GPU, storage). Every
row's charge period is its UTC day. Vast.ai invoices cannot be linked from charges, so every
row carries a provisional InvoiceId per account and billing month:
`VAST-<account>-<YYYY-MM>-PROVISIONAL`. Columns follow FOCUS 1.2 (plus FOCUS 1.3's
ServiceProviderName/HostProviderName, harmless for 1.2 readers); custom columns start with
`x_` and come last.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.core.errors import ReportArgumentError
from pipeline.reports.source import (
    ACCOUNT_FILTER,
    fetch_arrow,
    fetch_one,
    open_warehouse,
    require_data,
    window_params,
)
from pipeline.reports.window import Window
from pipeline.storage.atomic import local_atomic

MONEY = pa.decimal128(38, 12)
QUANTITY = pa.decimal128(38, 9)
UTC_TS = pa.timestamp("us", tz="UTC")
PROVIDER = "Vast.ai"

# Column order is the file's order: FOCUS columns first, then x_ columns.
FOCUS_SCHEMA = pa.schema([
    ("BilledCost", MONEY), ("EffectiveCost", MONEY), ("ListCost", MONEY),
    ("ContractedCost", MONEY),
    ("BillingAccountId", pa.string()), ("BillingAccountName", pa.string()),
    ("BillingCurrency", pa.string()),
    ("BillingPeriodStart", UTC_TS), ("BillingPeriodEnd", UTC_TS),
    ("ChargeCategory", pa.string()), ("ChargeClass", pa.string()),
    ("ChargeDescription", pa.string()), ("ChargeFrequency", pa.string()),
    ("ChargePeriodStart", UTC_TS), ("ChargePeriodEnd", UTC_TS),
    ("ConsumedQuantity", QUANTITY), ("ConsumedUnit", pa.string()),
    ("ContractedUnitPrice", MONEY), ("ListUnitPrice", MONEY),
    ("InvoiceId", pa.string()), ("InvoiceIssuerName", pa.string()),
    ("PricingCategory", pa.string()), ("PricingQuantity", QUANTITY),
    ("PricingUnit", pa.string()),
    ("ProviderName", pa.string()), ("PublisherName", pa.string()),
    ("ServiceProviderName", pa.string()), ("HostProviderName", pa.string()),
    ("RegionId", pa.string()), ("RegionName", pa.string()),
    ("ResourceId", pa.string()), ("ResourceName", pa.string()), ("ResourceType", pa.string()),
    ("ServiceCategory", pa.string()), ("ServiceName", pa.string()),
    ("ServiceSubcategory", pa.string()),
    ("SkuId", pa.string()), ("SkuPriceId", pa.string()),
    ("SubAccountId", pa.string()), ("SubAccountName", pa.string()),
    ("Tags", pa.string()),
    ("x_GpuName", pa.string()), ("x_NumGpus", pa.int64()), ("x_GpuHours", QUANTITY),
    ("x_InstanceHours", QUANTITY),
    ("x_MachineId", pa.int64()), ("x_HostId", pa.int64()), ("x_Reliability2", pa.float64()),
    ("x_IsEstimate", pa.bool_()), ("x_CostSource", pa.string()),
    ("x_BillIsFinal", pa.bool_()),
])

# Vast.ai invoices are not linkable from charges: a documented provisional id instead.
INVOICE_ID = "'VAST-' || account || '-' || strftime(day, '%Y-%m') || '-PROVISIONAL'"

# spend_items.item (and contract_type) -> FOCUS service columns, SKU and description.
_KIND = """
    CASE
        WHEN item = 'gpu' THEN {'cat': 'Compute', 'svc': 'GPU Instances',
            'sub': 'Virtual Machines',
            'sku': 'gpu/' || coalesce(gpu_name, 'unknown') || ' x' || coalesce(num_gpus, 0),
            'what': 'GPU compute (' || coalesce(num_gpus || 'x ', '')
                    || coalesce(gpu_name, 'unknown GPU') || ')'}
        WHEN item = 'storage' AND contract_type = 'instance' THEN {'cat': 'Storage',
            'svc': 'Instance Storage', 'sub': 'Block Storage', 'sku': 'storage/disk',
            'what': 'Instance storage'}
        WHEN item = 'storage' THEN {'cat': 'Storage', 'svc': 'Volumes',
            'sub': 'Block Storage', 'sku': 'storage/volume', 'what': 'Volume storage'}
        WHEN item = 'bandwidth_down' THEN {'cat': 'Networking', 'svc': 'Data Transfer',
            'sub': 'Network Connectivity', 'sku': 'network/download', 'what': 'Download'}
        WHEN item = 'bandwidth_up' THEN {'cat': 'Networking', 'svc': 'Data Transfer',
            'sub': 'Network Connectivity', 'sku': 'network/upload', 'what': 'Upload'}
        ELSE {'cat': 'Compute', 'svc': 'GPU Instances', 'sub': 'Virtual Machines',
            'sku': 'other', 'what': 'Other charges'}
    END"""

# One FOCUS row per spend_items row of the window: a mapping of its columns (names, casts
# and labels), no figure computed here. The charge period is the row's UTC day.
FOCUS_SQL = f"""
    WITH rows AS (
        SELECT *, {_KIND} AS kind,
               CAST(day AS TIMESTAMPTZ) AS day_start,
               CAST(day + 1 AS TIMESTAMPTZ) AS day_end,
               CAST(date_trunc('month', day) AS TIMESTAMPTZ) AS month_start,
               CAST(date_trunc('month', day) + INTERVAL 1 MONTH AS TIMESTAMPTZ) AS month_end
        FROM spend_items
        WHERE day BETWEEN $d0 AND $d1 AND {ACCOUNT_FILTER})
    SELECT
        CAST(cost AS DECIMAL(38, 12)) AS BilledCost,
        CAST(cost AS DECIMAL(38, 12)) AS EffectiveCost,
        CAST(list_cost AS DECIMAL(38, 12)) AS ListCost,
        CAST(list_cost AS DECIMAL(38, 12)) AS ContractedCost,
        account AS BillingAccountId, account AS BillingAccountName,
        'USD' AS BillingCurrency,
        month_start AS BillingPeriodStart, month_end AS BillingPeriodEnd,
        'Usage' AS ChargeCategory, CAST(NULL AS VARCHAR) AS ChargeClass,
        kind.what || ': ' || contract_type || ' ' || coalesce(CAST(contract_id AS VARCHAR), '?')
            || CASE WHEN cost_source = 'estimated' THEN ', estimated from snapshots'
                    ELSE coalesce(', ' || item_description, '') END AS ChargeDescription,
        'Usage-Based' AS ChargeFrequency,
        day_start AS ChargePeriodStart, day_end AS ChargePeriodEnd,
        CAST(quantity AS DECIMAL(38, 9)) AS ConsumedQuantity, quantity_unit AS ConsumedUnit,
        CAST(list_unit_price AS DECIMAL(38, 12)) AS ContractedUnitPrice,
        CAST(list_unit_price AS DECIMAL(38, 12)) AS ListUnitPrice,
        {INVOICE_ID} AS InvoiceId, '{PROVIDER}' AS InvoiceIssuerName,
        CASE WHEN coalesce(is_bid, false) THEN 'Dynamic' ELSE 'Standard' END
            AS PricingCategory,
        CAST(quantity AS DECIMAL(38, 9)) AS PricingQuantity, quantity_unit AS PricingUnit,
        '{PROVIDER}' AS ProviderName, '{PROVIDER}' AS PublisherName,
        '{PROVIDER}' AS ServiceProviderName, '{PROVIDER}' AS HostProviderName,
        coalesce(country, 'unknown') AS RegionId, coalesce(country, 'unknown') AS RegionName,
        CAST(coalesce(contract_id, -1) AS VARCHAR) AS ResourceId,
        coalesce(label, source, contract_type || '-' || contract_id) AS ResourceName,
        CASE WHEN contract_type = 'instance' THEN 'GPU Instance'
             ELSE upper(contract_type[1]) || contract_type[2:] END AS ResourceType,
        kind.cat AS ServiceCategory, kind.svc AS ServiceName,
        kind.sub AS ServiceSubcategory,
        kind.sku AS SkuId,
        kind.sku || '@' || printf('%.6f', list_unit_price) || '/' || quantity_unit
            AS SkuPriceId,
        account AS SubAccountId, account AS SubAccountName,
        CASE WHEN label IS NULL THEN '{{}}' ELSE CAST(json_object('label', label) AS VARCHAR)
        END AS Tags,
        gpu_name AS x_GpuName, num_gpus AS x_NumGpus,
        CAST(gpu_hours AS DECIMAL(38, 9)) AS x_GpuHours,
        CAST(instance_hours AS DECIMAL(38, 9)) AS x_InstanceHours,
        machine_id AS x_MachineId, host_id AS x_HostId, reliability2 AS x_Reliability2,
        cost_source = 'estimated' AS x_IsEstimate, cost_source AS x_CostSource,
        is_final AS x_BillIsFinal
    FROM rows
    ORDER BY day, account, contract_type, contract_id, item"""


# The window's BilledCost total, from the same rows and casts as the export's BilledCost.
TOTAL_SQL = f"""
    SELECT CAST(coalesce(sum(CAST(cost AS DECIMAL(38, 12))), 0) AS DECIMAL(38, 12)) AS total
    FROM spend_items WHERE day BETWEEN $d0 AND $d1 AND {ACCOUNT_FILTER}"""


@dataclass(frozen=True)
class FocusResult:
    rows: int
    total_billed_cost: Decimal
    path: Path


def focus_table(home: Path | str, *, date_from: date, date_to: date,
                account: str | None = None) -> tuple[pa.Table, Decimal]:
    """The FOCUS rows of a window as an Arrow table with `FOCUS_SCHEMA`, and their
    BilledCost total (summed in SQL over the same spend_items rows)."""
    window = Window(date_from, date_to)  # raises ReportError if date_from > date_to
    params = window_params(window, account)
    with open_warehouse(home) as con:
        require_data(con, "spend_items", "day", window, account)
        table = fetch_arrow(con, FOCUS_SQL, params)
        total = fetch_one(con, TOTAL_SQL, params)["total"]
    return table.cast(FOCUS_SCHEMA), total


def export_focus(home: Path | str, *, date_from: date, date_to: date, out: Path,
                 account: str | None = None) -> FocusResult:
    """Write the window's FOCUS dataset to `out` (.parquet or .csv, chosen by suffix)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ReportArgumentError(f"{out.name} must end in .parquet or .csv.")
    table, total = focus_table(home, date_from=date_from, date_to=date_to, account=account)
    with local_atomic(out) as tmp:
        if suffix == ".parquet":
            pq.write_table(table, tmp, compression="zstd")
        else:
            pacsv.write_csv(_csv_ready(table), tmp)
    return FocusResult(rows=table.num_rows, total_billed_cost=total, path=out)


def _csv_ready(table: pa.Table) -> pa.Table:
    """Timestamps as ISO 8601 with a Z (what FinOps tools parse), everything else as is."""
    columns = []
    for name in table.column_names:
        col = table[name]
        if pa.types.is_timestamp(col.type):
            col = pc.strftime(col, format="%Y-%m-%dT%H:%M:%SZ")
        columns.append(col)
    return pa.table(columns, names=table.column_names)
