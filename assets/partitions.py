"""The one daily partitions definition of the Dagster assets: one partition per UTC day.

Why one: the collection, the billed charges and the schedules that pick today's partition
must agree on what a day is (UTC), where the days start and that today's partition exists
before the day ends (`end_offset=1`: a scheduled collection materializes the day it runs
in); two copies could drift apart.
"""


import dagster as dg

# Days from 2025-01-01 (the earliest a backfill offers) up to and including today.
DAILY = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1)
