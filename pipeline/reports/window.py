"""Report windows: whole UTC days, `date_to` inclusive.

Reports and the FOCUS export take the same `--from`/`--to` arguments; parsing them here
keeps the defaults (the last 7 days, today included) and the error sentences identical for
every command that accepts a window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from pipeline.core.errors import ReportArgumentError

DEFAULT_DAYS = 7
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Window:
    """`[start, end)` in UTC, built from inclusive days so SQL never has to add a day."""

    date_from: date
    date_to: date

    def __post_init__(self) -> None:
        check_order(self.date_from, self.date_to)

    @property
    def start(self) -> datetime:
        return day_start(self.date_from)

    @property
    def end(self) -> datetime:
        return day_start(self.date_to + timedelta(days=1))

    @property
    def days(self) -> list[date]:
        n = (self.date_to - self.date_from).days + 1
        return [self.date_from + timedelta(days=i) for i in range(n)]

    @property
    def month_start(self) -> date:
        """First day of the month the window ends in (month-to-date figures use it)."""
        return self.date_to.replace(day=1)

    @property
    def month_end(self) -> datetime:
        """Exclusive end of the month the window ends in."""
        first = self.month_start
        nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return day_start(nxt)

    def label(self) -> str:
        return f"{self.date_from.isoformat()} to {self.date_to.isoformat()}"


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def parse_day(text: str, flag: str) -> date:
    """Strict YYYY-MM-DD: `date.fromisoformat` alone would also accept `20261119`."""
    text = text.strip()
    if _DAY_RE.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise ReportArgumentError(f"{flag} {text} is not a date; use YYYY-MM-DD.")


def parse_window(date_from: str | None, date_to: str | None, *, today: date) -> tuple[date, date]:
    """Turn `--from`/`--to` into inclusive UTC days; default: the last 7 days, today included."""
    end = parse_day(date_to, "--to") if date_to else None
    start = parse_day(date_from, "--from") if date_from else None
    if end is None:
        end = today if start is None or start <= today else start + timedelta(days=DEFAULT_DAYS - 1)
    if start is None:
        start = end - timedelta(days=DEFAULT_DAYS - 1)
    check_order(start, end)
    return start, end


def check_order(date_from: date, date_to: date) -> None:
    """The one check that a window's first day is not after its last (ReportArgumentError)."""
    if date_from > date_to:
        raise ReportArgumentError(
            f"--from {date_from.isoformat()} is after --to {date_to.isoformat()}; "
            "give the earlier day first."
        )


def month_to_date_window(today: date) -> tuple[date, date]:
    """The first of `today`'s month through `today` (the scheduled month-to-date report)."""
    return today.replace(day=1), today
