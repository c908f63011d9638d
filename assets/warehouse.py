"""The SQL models of `sql/` as Dagster assets, one asset per model file.

The warehouse is built in one step (it is swapped in atomically as a whole), so the models
are one multi-asset: each model is its own asset in the graph with `deps` read from its
SQL, and all of them materialize together.
"""


import dagster as dg

from assets.charges import landed_billed_charges
from assets.collection import landed_instance_snapshots
from assets.market import landed_market_snapshots
from assets.resources import VastPipelineResource
from pipeline.alerts.hooks import after_build
from pipeline.core.errors import PipelineError
from pipeline.storage.datasets import CHARGE_FAMILY, DATASETS, MARKET_FAMILY, SNAPSHOT_FAMILY
from pipeline.warehouse.build import build_for
from pipeline.warehouse.marts import MART_CHECK_TABLES, check_marts
from pipeline.warehouse.models import discover_models

PREFIX = "warehouse"
# Eager, except that it must not wait for every upstream partition: the landed history is
# partitioned by day since 2025-01-01 and most of those days were never collected, so
# plain eager() (which skips an asset while any dependency is missing) would never build.
FOLLOW_COLLECTION = dg.AutomationCondition.eager().without(
    ~dg.AutomationCondition.any_deps_missing())
MODELS = discover_models()


def _key(name: str) -> dg.AssetKey:
    return dg.AssetKey([PREFIX, name])


# The collection asset that writes each dataset family the staging models read.
COLLECTION_ASSETS: dict[str, dg.AssetKey] = {
    SNAPSHOT_FAMILY: landed_instance_snapshots.key,
    CHARGE_FAMILY: landed_billed_charges.key,
    MARKET_FAMILY: landed_market_snapshots.key,
}


def collection_deps(model) -> list[dg.AssetKey]:
    """The collection assets whose datasets a staging model reads (from its placeholders)."""
    families = {DATASETS[name].family for name in model.sources if name in DATASETS}
    return sorted((COLLECTION_ASSETS[f] for f in families if f in COLLECTION_ASSETS),
                  key=lambda key: key.to_user_string())


def _spec(model) -> dg.AssetSpec:
    deps = [_key(dep) for dep in model.deps]
    if not deps:  # staging models read the history: depend on what collects it
        deps = collection_deps(model)
    return dg.AssetSpec(_key(model.name), deps=deps, description=model.header,
                        group_name="warehouse", kinds={"duckdb", "sql"},
                        automation_condition=FOLLOW_COLLECTION,
                        metadata={"sql_file": str(model.path)})


@dg.multi_asset(
    specs=[_spec(model) for model in MODELS],
    check_specs=[dg.AssetCheckSpec(check, asset=_key(table), blocking=False)
                 for check, table in MART_CHECK_TABLES.items()],
    can_subset=False,
)
def warehouse_models(context: dg.AssetExecutionContext, vast: VastPipelineResource):
    """Builds every model of sql/ into $VAST_PIPELINE_HOME/warehouse.duckdb, new days only."""
    settings = vast.settings()
    try:
        result = build_for(settings)
    except PipelineError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    context.log.info(result.summary())
    after_build(settings)
    for model in MODELS:
        yield dg.MaterializeResult(asset_key=_key(model.name),
                                   metadata=result.model_metadata(model.name))
    for outcome in check_marts(settings.home):
        yield dg.AssetCheckResult(asset_key=_key(MART_CHECK_TABLES[outcome.name]),
                                  check_name=outcome.name, passed=outcome.passed,
                                  description=outcome.detail)
