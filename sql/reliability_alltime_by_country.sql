-- reliability_alltime_by_country: observed reliability summed over the instances of each country.
-- Grain: (account, country). Measures as defined in reliability_alltime_rollup: instances,
-- window/observed/starting/up/down hours, coverage, availability, incidents,
-- incident_hours, mttr_hours, mtbf_hours, reliability2_first/_last/_min.
-- materialized: view
select
    account, country,
    * exclude (grouped_by, account, machine_id, host_id, gpu_name, country)
from reliability_alltime_rollup
where grouped_by = 'country'
