"""Reports as assets: fresh cost and reliability reports after every warehouse build.

Each writes HTML, Markdown and CSV under $VAST_PIPELINE_HOME/reports/<name>/ so the newest
files always sit at a predictable place for people (and a web server) to pick up.
"""


from datetime import UTC, datetime

import dagster as dg

from assets.resources import VastPipelineResource
from assets.warehouse import FOLLOW_COLLECTION, MODELS, _key
from pipeline.config import local_dir
from pipeline.errors import PipelineError
from pipeline.reports import FORMATS, month_to_date_window, parse_window, write_reports

REPORT_DEPS = [_key(model.name) for model in MODELS]


def _write(vast: VastPipelineResource, kind: str, name: str, window) -> dg.MaterializeResult:
    settings = vast.settings()
    out_dir = local_dir(settings.home) / "reports" / name
    try:
        paths = write_reports(settings.home, kind, date_from=window[0], date_to=window[1],
                              formats=FORMATS, out_dir=out_dir)
    except PipelineError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    return dg.MaterializeResult(metadata={
        "window": f"{window[0]} .. {window[1]}",
        "files": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in paths)),
        "html": dg.MetadataValue.path(str(next(p for p in paths if p.suffix == ".html"))),
    })


def _last_7_days():
    return parse_window(None, None, today=datetime.now(UTC).date())


@dg.asset(deps=REPORT_DEPS, group_name="reports", kinds={"html"},
          automation_condition=FOLLOW_COLLECTION)
def cost_report(vast: VastPipelineResource) -> dg.MaterializeResult:
    """Cost of the last 7 days: spend, burn rate, idle spend, price changes."""
    return _write(vast, "cost", "cost_last_7_days", _last_7_days())


@dg.asset(deps=REPORT_DEPS, group_name="reports", kinds={"html"},
          automation_condition=FOLLOW_COLLECTION)
def cost_report_month_to_date(vast: VastPipelineResource) -> dg.MaterializeResult:
    """Cost of the current month so far, with the projected month."""
    return _write(vast, "cost", "cost_month_to_date",
                  month_to_date_window(datetime.now(UTC).date()))


@dg.asset(deps=REPORT_DEPS, group_name="reports", kinds={"html"},
          automation_condition=FOLLOW_COLLECTION)
def reliability_report(vast: VastPipelineResource) -> dg.MaterializeResult:
    """Availability, incidents, MTTR and host reliability of the last 7 days."""
    return _write(vast, "reliability", "reliability_last_7_days", _last_7_days())
