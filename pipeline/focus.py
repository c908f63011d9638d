"""Costs as a FinOps FOCUS 1.2 cost-and-usage dataset (Parquet or CSV): billed where a
bill is stored, estimated where it is not yet.

Billed rows (`x_CostSource` = 'billed'): one per contract, UTC day and bill item (GPU,
storage, download, upload, other), with BilledCost/EffectiveCost the bill's amount and
ListCost/ContractedCost the item's list rate x quantity (from the item's description; the
amount itself when the description gives no rate). Estimated rows (`x_CostSource` =
'estimated', `x_IsEstimate`): for account-days with no stored bill only, one per instance,
collection interval clipped to UTC day boundaries and component (GPU, storage), split
exactly as `cost_daily` splits intervals at midnight. So BilledCost over a window sums to
billed_daily.total_cost of the billed account-days plus cost_daily.total_cost of the rest.
Vast.ai invoices cannot be linked from charges, so every row carries a provisional
InvoiceId per account and billing month: `VAST-<account>-<YYYY-MM>-PROVISIONAL`.
Columns follow FOCUS 1.2 (plus FOCUS 1.3's ServiceProviderName/HostProviderName, harmless
for 1.2 readers); custom columns start with `x_` and come last.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.errors import ReportArgumentError
from pipeline.reports.source import ACCOUNT_FILTER, fetch_arrow, open_warehouse, require_data
from pipeline.reports.window import Window

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
    ("x_MachineId", pa.int64()), ("x_HostId", pa.int64()), ("x_Reliability2", pa.float64()),
    ("x_ActualStatus", pa.string()), ("x_IntervalCapped", pa.bool_()),
    ("x_IsEstimate", pa.bool_()), ("x_CostSource", pa.string()),
    ("x_BillIsFinal", pa.bool_()),
])

# Vast.ai invoices are not linkable from charges: a documented provisional id instead.
INVOICE_ID = "'VAST-' || account || '-' || strftime({at}, '%Y-%m') || '-PROVISIONAL'"

# Interval pieces: each interval cut at UTC midnight; `share` of its hours in the piece.
_PIECES = f"""
    WITH iv AS (
        SELECT * FROM instance_intervals
        WHERE interval_end > $t0 AND interval_start < $t1 AND hours > 0 AND {ACCOUNT_FILTER}),
    cut AS (
        SELECT iv.*, greatest(iv.interval_start, d.day_start) AS ps,
               least(iv.interval_end, d.day_start + INTERVAL 1 DAY) AS pe
        FROM iv, LATERAL (
            SELECT unnest(generate_series(date_trunc('day', iv.interval_start),
                                          iv.interval_end - INTERVAL 1 MICROSECOND,
                                          INTERVAL 1 DAY)) AS day_start) AS d)
    SELECT *, epoch(pe - ps) / 3600.0 AS piece_hours,
           epoch(pe - ps) / epoch(interval_end - interval_start) AS share
    FROM cut WHERE ps >= $t0 AND ps < $t1 AND pe > ps
        AND NOT EXISTS (SELECT 1 FROM billed_days AS b
                        WHERE b.account = cut.account AND b.day = CAST(cut.ps AS DATE))"""

# One SELECT per component; the columns are the FOCUS schema's, in order.
_COMPONENT = """
    SELECT
        CAST({cost} * share AS DECIMAL(38, 12)) AS BilledCost,
        CAST({cost} * share AS DECIMAL(38, 12)) AS EffectiveCost,
        CAST({cost} * share AS DECIMAL(38, 12)) AS ListCost,
        CAST({cost} * share AS DECIMAL(38, 12)) AS ContractedCost,
        account AS BillingAccountId, account AS BillingAccountName,
        'USD' AS BillingCurrency,
        date_trunc('month', ps) AS BillingPeriodStart,
        date_trunc('month', ps) + INTERVAL 1 MONTH AS BillingPeriodEnd,
        'Usage' AS ChargeCategory, CAST(NULL AS VARCHAR) AS ChargeClass,
        {description} AS ChargeDescription, 'Usage-Based' AS ChargeFrequency,
        ps AS ChargePeriodStart, pe AS ChargePeriodEnd,
        CAST(piece_hours AS DECIMAL(38, 9)) AS ConsumedQuantity, 'Hours' AS ConsumedUnit,
        CAST({rate} AS DECIMAL(38, 12)) AS ContractedUnitPrice,
        CAST({rate} AS DECIMAL(38, 12)) AS ListUnitPrice,
        {invoice} AS InvoiceId, '{provider}' AS InvoiceIssuerName,
        CASE WHEN coalesce(is_bid, false) THEN 'Dynamic' ELSE 'Standard' END
            AS PricingCategory,
        CAST(piece_hours AS DECIMAL(38, 9)) AS PricingQuantity, 'Hours' AS PricingUnit,
        '{provider}' AS ProviderName, '{provider}' AS PublisherName,
        '{provider}' AS ServiceProviderName, '{provider}' AS HostProviderName,
        country AS RegionId, country AS RegionName,
        CAST(instance_id AS VARCHAR) AS ResourceId,
        coalesce(label, 'instance ' || instance_id) AS ResourceName,
        'GPU Instance' AS ResourceType,
        '{category}' AS ServiceCategory, '{service}' AS ServiceName,
        '{subcategory}' AS ServiceSubcategory,
        {sku} AS SkuId, {sku} || '@' || printf('%.6f', {rate}) || '/h' AS SkuPriceId,
        account AS SubAccountId, account AS SubAccountName,
        CASE WHEN label IS NULL THEN '{{}}' ELSE CAST(json_object('label', label) AS VARCHAR)
        END AS Tags,
        gpu_name AS x_GpuName, num_gpus AS x_NumGpus,
        CAST({gpu_hours} AS DECIMAL(38, 9)) AS x_GpuHours,
        machine_id AS x_MachineId, host_id AS x_HostId, reliability2 AS x_Reliability2,
        actual_status AS x_ActualStatus, is_capped AS x_IntervalCapped, true AS x_IsEstimate,
        'estimated' AS x_CostSource, CAST(NULL AS BOOLEAN) AS x_BillIsFinal
    FROM pieces WHERE {billed}"""

# Bill items -> (ServiceCategory, ServiceName, ServiceSubcategory, SkuId, description).
_ITEM_KIND = """
    CASE
        WHEN item_type = 'gpu' THEN {'cat': 'Compute', 'svc': 'GPU Instances',
            'sub': 'Virtual Machines',
            'sku': 'gpu/' || coalesce(gpu_name, 'unknown') || ' x' || coalesce(num_gpus, 0),
            'what': 'GPU compute'}
        WHEN item_type = 'disk' AND contract_type = 'instance' THEN {'cat': 'Storage',
            'svc': 'Instance Storage', 'sub': 'Block Storage', 'sku': 'storage/disk',
            'what': 'Instance storage'}
        WHEN item_type = 'disk' THEN {'cat': 'Storage', 'svc': 'Volumes',
            'sub': 'Block Storage', 'sku': 'storage/volume', 'what': 'Volume storage'}
        WHEN item_type = 'bwd' THEN {'cat': 'Networking', 'svc': 'Data Transfer',
            'sub': 'Network Connectivity', 'sku': 'network/download', 'what': 'Download'}
        WHEN item_type = 'bwu' THEN {'cat': 'Networking', 'svc': 'Data Transfer',
            'sub': 'Network Connectivity', 'sku': 'network/upload', 'what': 'Upload'}
        ELSE {'cat': 'Compute', 'svc': 'GPU Instances', 'sub': 'Virtual Machines',
            'sku': 'other/' || item_type, 'what': 'Other charges'}
    END"""

# Billed items of the window with the instance's attributes of that day (when seen).
_BILLED = f"""
    WITH items AS (
        SELECT c.*, d.is_final, i.gpu_name, i.num_gpus, i.machine_id, i.host_id,
               i.country, i.is_bid, i.reliability2_last,
               CAST(c.day AS TIMESTAMPTZ) AS ps,
               CAST(c.day + 1 AS TIMESTAMPTZ) AS pe,
               -- a description without a quantity is one unit of 'Charges'
               CASE WHEN c.quantity IS NOT NULL AND c.quantity > 0 THEN c.quantity ELSE 1 END
                   AS qty,
               CASE lower(c.quantity_unit) WHEN 'hours' THEN 'Hours' WHEN 'hour' THEN 'Hours'
                   WHEN 'gb' THEN 'GB' ELSE coalesce(c.quantity_unit, 'Charges') END AS unit
        FROM billed_charges AS c
        JOIN billed_days AS d ON c.account = d.account AND c.day = d.day
        LEFT JOIN instance_daily AS i
            ON c.account = i.account AND c.day = i.day AND c.instance_id = i.instance_id
        WHERE c.day >= CAST($t0 AS DATE) AND c.day < CAST($t1 AS DATE)
            AND ($account::VARCHAR IS NULL OR c.account = $account::VARCHAR)),
    priced AS (
        SELECT *, {_ITEM_KIND} AS kind,
               CASE WHEN quantity > 0 THEN coalesce(unit_price, amount / quantity)
                    ELSE amount END AS list_rate
        FROM items)
    SELECT
        CAST(amount AS DECIMAL(38, 12)) AS BilledCost,
        CAST(amount AS DECIMAL(38, 12)) AS EffectiveCost,
        CAST(list_rate * qty AS DECIMAL(38, 12)) AS ListCost,
        CAST(list_rate * qty AS DECIMAL(38, 12)) AS ContractedCost,
        account AS BillingAccountId, account AS BillingAccountName,
        'USD' AS BillingCurrency,
        date_trunc('month', ps) AS BillingPeriodStart,
        date_trunc('month', ps) + INTERVAL 1 MONTH AS BillingPeriodEnd,
        'Usage' AS ChargeCategory, CAST(NULL AS VARCHAR) AS ChargeClass,
        kind.what || ': ' || coalesce(source, contract_type)
            || coalesce(', ' || item_description, '') AS ChargeDescription,
        'Usage-Based' AS ChargeFrequency,
        ps AS ChargePeriodStart, pe AS ChargePeriodEnd,
        CAST(qty AS DECIMAL(38, 9)) AS ConsumedQuantity, unit AS ConsumedUnit,
        CAST(list_rate AS DECIMAL(38, 12)) AS ContractedUnitPrice,
        CAST(list_rate AS DECIMAL(38, 12)) AS ListUnitPrice,
        {INVOICE_ID.format(at="ps")} AS InvoiceId, '{PROVIDER}' AS InvoiceIssuerName,
        CASE WHEN coalesce(is_bid, false) THEN 'Dynamic' ELSE 'Standard' END
            AS PricingCategory,
        CAST(qty AS DECIMAL(38, 9)) AS PricingQuantity, unit AS PricingUnit,
        '{PROVIDER}' AS ProviderName, '{PROVIDER}' AS PublisherName,
        '{PROVIDER}' AS ServiceProviderName, '{PROVIDER}' AS HostProviderName,
        coalesce(country, 'unknown') AS RegionId, coalesce(country, 'unknown') AS RegionName,
        CAST(coalesce(contract_id, -1) AS VARCHAR) AS ResourceId,
        coalesce(label, source, contract_type || ' ' || contract_id) AS ResourceName,
        CASE WHEN contract_type = 'instance' THEN 'GPU Instance'
             ELSE upper(contract_type[1]) || contract_type[2:] END AS ResourceType,
        kind.cat AS ServiceCategory, kind.svc AS ServiceName,
        kind.sub AS ServiceSubcategory,
        kind.sku AS SkuId, kind.sku || '@' || printf('%.6f', list_rate) || '/' || unit
            AS SkuPriceId,
        account AS SubAccountId, account AS SubAccountName,
        CASE WHEN label IS NULL THEN '{{}}' ELSE CAST(json_object('label', label) AS VARCHAR)
        END AS Tags,
        gpu_name AS x_GpuName, num_gpus AS x_NumGpus,
        CAST(CASE WHEN item_type = 'gpu' AND unit = 'Hours'
                  THEN qty * coalesce(num_gpus, 0) ELSE 0 END AS DECIMAL(38, 9)) AS x_GpuHours,
        machine_id AS x_MachineId, host_id AS x_HostId, reliability2_last AS x_Reliability2,
        CAST(NULL AS VARCHAR) AS x_ActualStatus, CAST(NULL AS BOOLEAN) AS x_IntervalCapped,
        false AS x_IsEstimate, 'billed' AS x_CostSource, is_final AS x_BillIsFinal
    FROM priced"""

FOCUS_SQL = f"""
    WITH pieces AS ({_PIECES})
    {_COMPONENT.format(
        cost="gpu_cost", rate="gpu_rate", provider=PROVIDER, category="Compute",
        service="GPU Instances", subcategory="Virtual Machines",
        sku="'gpu/' || coalesce(gpu_name, 'unknown') || ' x' || coalesce(num_gpus, 0)",
        description="'GPU compute: ' || coalesce(num_gpus, 0) || 'x ' "
                    "|| coalesce(gpu_name, 'unknown GPU') || ', instance ' || instance_id",
        gpu_hours="piece_hours * coalesce(num_gpus, 0)",
        billed="gpu_billed", invoice=INVOICE_ID.format(at="ps"))}
    UNION ALL
    {_COMPONENT.format(
        cost="storage_cost", rate="storage_rate", provider=PROVIDER, category="Storage",
        service="Instance Storage", subcategory="Block Storage",
        sku="'storage/disk'",
        description="'Instance storage: instance ' || instance_id",
        gpu_hours="0", billed="storage_billed", invoice=INVOICE_ID.format(at="ps"))}
    UNION ALL
    SELECT * FROM ({_BILLED})
    ORDER BY ChargePeriodStart, ResourceId, ServiceCategory"""


@dataclass(frozen=True)
class FocusResult:
    rows: int
    total_billed_cost: Decimal
    path: Path


def focus_table(home: Path | str, *, date_from: date, date_to: date,
                account: str | None = None) -> pa.Table:
    """The FOCUS rows of a window as an Arrow table with `FOCUS_SCHEMA`."""
    window = Window(date_from, date_to)  # raises ReportError if date_from > date_to
    params = {"t0": window.start, "t1": window.end, "account": account}
    with open_warehouse(home) as con:
        require_data(con, "spend_daily", "day", window, account)
        table = fetch_arrow(con, FOCUS_SQL, params)
    return table.cast(FOCUS_SCHEMA)


def export_focus(home: Path | str, *, date_from: date, date_to: date, out: Path,
                 account: str | None = None) -> FocusResult:
    """Write the window's FOCUS dataset to `out` (.parquet or .csv, chosen by suffix)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ReportArgumentError(f"{out.name} must end in .parquet or .csv.")
    table = focus_table(home, date_from=date_from, date_to=date_to, account=account)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    if suffix == ".parquet":
        pq.write_table(table, tmp, compression="zstd")
    else:
        pacsv.write_csv(_csv_ready(table), tmp)
    os.replace(tmp, out)
    total = pc.sum(table["BilledCost"]).as_py() or Decimal(0)
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
