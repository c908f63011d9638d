-- alert_log: every record of the alert log, once. Grain: one log record.
-- Read at query time from the write-once NDJSON files pipeline.alerts writes under
-- $HOME/alerts/log/day=D/ (one file per evaluation run), so a query right after an
-- evaluation sees it without a rebuild. `record` is 'transition' (see alerts), 'delivery'
-- (an attempt series of one transition to one receiver) or 'evaluation' (see
-- alert_evaluations). A file merging a past day's files starts with a record listing the
-- files it replaces: that record and the listed files (deleted right after it is written;
-- one an interrupted run left behind) are not read, so no record counts twice.
-- `state_id` names the alert state file the record was written under ('' before states
-- had one). Receivers appear by name only: webhook URLs are never written to the log.
-- materialized: view (live over the alert log)
with files as (
    select
        *,
        string_split(filename, '/')[-1] as file_name
    from read_json(
        '{{ alert_log_glob }}',
        format = 'newline_delimited',
        filename = true,
        hive_partitioning = false,
        columns = {
            record: 'VARCHAR', transition_id: 'VARCHAR', seq: 'BIGINT', rule: 'VARCHAR',
            state: 'VARCHAR', key: 'VARCHAR', account: 'VARCHAR', instance_id: 'BIGINT',
            summary: 'VARCHAR', started_at: 'TIMESTAMPTZ', observed_at: 'TIMESTAMPTZ',
            receivers: 'VARCHAR[]', receiver: 'VARCHAR', attempted_at: 'TIMESTAMPTZ',
            attempts: 'INTEGER', accepted: 'BOOLEAN', status_code: 'INTEGER',
            error: 'VARCHAR', state_id: 'VARCHAR', evaluation_id: 'VARCHAR',
            run_id: 'VARCHAR', point: 'VARCHAR', evaluated_at: 'TIMESTAMPTZ',
            rules: 'VARCHAR[]', rules_switched_off: 'VARCHAR[]', accounts: 'VARCHAR[]',
            keys: 'VARCHAR[]', firing_in_scope: 'INTEGER', firing_total: 'INTEGER',
            fired: 'INTEGER', resolved: 'INTEGER', files: 'VARCHAR[]'
        }
    )
),

replaced as (
    select distinct unnest(files) as file_name
    from files
    where record = 'compacted'
)

select
    f.record,
    f.transition_id,
    f.seq,
    f.rule,
    f.state,
    f.key,
    f.account,
    f.instance_id,
    f.summary,
    f.started_at,
    f.observed_at,
    f.receivers,
    f.receiver,
    f.attempted_at,
    f.attempts,
    f.accepted,
    f.status_code,
    f.error,
    coalesce(f.state_id, '') as state_id,
    f.evaluation_id,
    f.run_id,
    f.point,
    f.evaluated_at,
    f.rules,
    f.rules_switched_off,
    f.accounts,
    f.keys,
    f.firing_in_scope,
    f.firing_total,
    f.fired,
    f.resolved
from files as f
where f.record <> 'compacted'
    and not exists (select 1 from replaced as r where r.file_name = f.file_name)
