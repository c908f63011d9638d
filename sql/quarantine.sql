-- quarantine: every value or record the flattening could not keep as typed, with why.
-- Grain: one row per rejected value (field set) or whole record (field NULL) per snapshot.
-- The original value is JSON text as the API sent it (secrets were removed before landing).
-- materialized: view (live over the Parquet written by pipeline.landing.history)
select
    account,
    snapshot_date,
    snapshot_at,
    snapshot_id,
    instance_id,
    field,
    case when field is null then 'record' else 'value' end as kind,
    original_value,
    reason
from read_parquet(
    '{{ quarantine_glob }}',
    hive_partitioning = true,
    hive_types = {'account': varchar, 'snapshot_date': date},
    union_by_name = {{ quarantine_union_by_name }}
)
