"""Reports as assets: fresh cost and reliability reports after every warehouse build.

Each writes HTML, Markdown and CSV under $VAST_PIPELINE_HOME/reports/<name>/ so the newest
files always sit at a predictable place for people (and a web server) to pick up.

Until the warehouse holds data (a fresh deployment's first runs: one snapshot makes no
interval yet), a report is skipped, not failed: the run succeeds, the asset is not
materialized, and the run's log says why. Any other report error fails the step.
"""


from collections.abc import Iterator, Sequence
from datetime import date
from functools import partial
from pathlib import Path

import dagster as dg

from assets.resources import VastPipelineResource
from assets.warehouse import FOLLOW_COLLECTION, MODELS, _key
from pipeline.core import clock
from pipeline.core.errors import NoDataYetError, PipelineError
from pipeline.reports import FORMATS, month_to_date_window, parse_window, write_reports
from pipeline.storage.datasets import dataset
from pipeline.storage.local import local_dir

REPORT_DEPS = [_key(model.name) for model in MODELS]


Window = tuple[date, date]


def _write(context: dg.AssetExecutionContext, vast: VastPipelineResource, kind: str,
           name: str, window: Window) -> Iterator[dg.MaterializeResult]:
    """Write the report's files and materialize; yield nothing while there is no data."""
    settings = vast.settings()
    out_dir = local_dir(settings.home) / dataset("reports").folder / name
    try:
        paths = write_reports(settings.home, kind, date_from=window[0], date_to=window[1],
                              formats=FORMATS, out_dir=out_dir)
    except NoDataYetError as exc:
        context.log.warning(f"{name} skipped, not materialized: {exc}")
        return
    except PipelineError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    yield dg.MaterializeResult(metadata=report_metadata(window, paths))


def report_metadata(window: Window, paths: Sequence[Path]) -> dict[str, object]:
    """A report's materialization metadata: its window, its files, the HTML to open."""
    html = [p for p in paths if p.suffix == ".html"]
    return {
        "window": f"{window[0]} .. {window[1]}",
        "files": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in paths)),
        **({"html": dg.MetadataValue.path(str(html[0]))} if html else {}),
    }


def _last_7_days() -> Window:
    return parse_window(None, None, today=clock.today())


# A report asset: after the models, following collection, skipped while there is no data.
_report = partial(dg.asset, deps=REPORT_DEPS, group_name="reports", kinds={"html"},
                  automation_condition=FOLLOW_COLLECTION, output_required=False)


@_report()
def cost_report(context: dg.AssetExecutionContext,
                vast: VastPipelineResource) -> Iterator[dg.MaterializeResult]:
    """Cost of the last 7 days: spend, burn rate, idle spend, price changes."""
    yield from _write(context, vast, "cost", "cost_last_7_days", _last_7_days())


@_report()
def cost_report_month_to_date(context: dg.AssetExecutionContext,
                              vast: VastPipelineResource) -> Iterator[dg.MaterializeResult]:
    """Cost of the current month so far, with the projected month."""
    yield from _write(context, vast, "cost", "cost_month_to_date",
                      month_to_date_window(clock.today()))


@_report()
def reliability_report(context: dg.AssetExecutionContext,
                       vast: VastPipelineResource) -> Iterator[dg.MaterializeResult]:
    """Availability, incidents, MTTR and host reliability of the last 7 days."""
    yield from _write(context, vast, "reliability", "reliability_last_7_days", _last_7_days())
