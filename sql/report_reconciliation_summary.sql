-- report_reconciliation_summary: the bill against the estimate over a window, one row,
-- on the account-days that have a stored bill (cost_reconciliation, instance contracts
-- only: volumes and other contracts have no estimate to compare).
-- Call: report_reconciliation_summary(day_from, day_to, account_name := NULL).
-- billed_cost / estimated_cost / bandwidth_cost: cost_reconciliation summed;
-- billed_only_cost: the bill of instances no snapshot saw that day; *_rows: instance-days
-- by status. The gap is measured only on account-days that also have snapshots (a day
-- billed before collection began has no estimate): billed_observed, estimated_observed,
-- estimate_gap = (billed_observed - estimated_observed) / billed_observed.
-- difference = billed_cost - estimated_cost; difference_share = difference / billed_cost.
-- other_contracts_billed_cost: what the same billed account-days billed for contracts
-- that are not instances (spend_daily), so that billed_cost + it = the window's billed
-- spend (report_cost_summary.billed_cost).
-- materialized: macro
-- macro: report_reconciliation_summary(day_from, day_to, account_name := NULL)
with recon as (
    select
        *,
        bool_or(estimated_cost is not null) over (partition by account, day) as observed
    from cost_reconciliation
    where
        day_billed
        and day between day_from and day_to
        and (account_name is null or account = account_name)
),

totals as (
    select
        count(distinct account || '/' || cast(day as varchar)) as billed_account_days,
        coalesce(sum(billed_cost), 0) as billed_cost,
        coalesce(sum(estimated_cost), 0) as estimated_cost,
        coalesce(sum(bandwidth_cost), 0) as bandwidth_cost,
        coalesce(sum(case when status = 'billed_only' then billed_cost end), 0)
            as billed_only_cost,
        count(case when status = 'matched' then 1 end) as matched_rows,
        count(case when status = 'differs' then 1 end) as differs_rows,
        count(case when status = 'billed_only' then 1 end) as billed_only_rows,
        count(case when status = 'estimated_only' then 1 end) as estimated_only_rows,
        coalesce(sum(case when observed then billed_cost end), 0) as billed_observed,
        coalesce(sum(case when observed then estimated_cost end), 0) as estimated_observed
    from recon
),

other as (
    select coalesce(sum(total_cost), 0) as other_contracts_billed_cost
    from spend_daily
    where
        cost_source = 'billed'
        and contract_type <> 'instance'
        and day between day_from and day_to
        and (account_name is null or account = account_name)
)

select
    t.billed_account_days,
    t.billed_cost,
    t.estimated_cost,
    t.billed_cost - t.estimated_cost as difference,
    (t.billed_cost - t.estimated_cost) / nullif(t.billed_cost, 0) as difference_share,
    t.bandwidth_cost,
    t.billed_only_cost,
    t.matched_rows,
    t.differs_rows,
    t.billed_only_rows,
    t.estimated_only_rows,
    t.billed_observed,
    t.estimated_observed,
    (t.billed_observed - t.estimated_observed) / nullif(t.billed_observed, 0) as estimate_gap,
    o.other_contracts_billed_cost
from totals as t, other as o
