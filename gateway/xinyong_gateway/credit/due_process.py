"""Due-process deadlines: ``Nd`` calendar days and ``Nwd`` working days on the Chinese working-day calendar.

The city's measures give an authority 30 days to answer an objection, 3 working days to publish a correction and
7 working days to feed a rejected objection's result back to the applicant. This module turns such a duration and
the day something happened into the last day of the deadline:

- ``Nd`` ends at the end of day D+N (China Standard Time);
- ``Nwd`` ends at the end of the Nth working day strictly after day D.

Working days come from the ``holidays`` library's China calendar: weekends and public holidays are days off, and
the weekend days the State Council moves to working days (调休) are working days. No holiday table is written
here. The library knows the make-up working days of the years the State Council has published; for a later year
it knows the statutory holidays only, so a deadline that far ahead may move when the year's schedule is out.

Pure: no I/O, no clock (the caller passes "now" to :func:`is_overdue`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Literal

import holidays

from xinyong.subjects import CHINA_STANDARD_TIME

__all__ = ["DueDuration", "deadline", "due_duration", "is_overdue", "is_working_day"]

_DURATION = re.compile(r"([1-9][0-9]{0,3})(wd|d)")


@dataclass(frozen=True, slots=True)
class DueDuration:
    """A deadline's length: ``count`` calendar days (``d``) or working days (``wd``)."""

    count: int
    unit: Literal["d", "wd"]

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"


def due_duration(text: str) -> DueDuration:
    """Parse ``"30d"`` or ``"3wd"``; a ValueError says what is expected."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError('a deadline is a whole number of days ("30d") or of working days ("3wd")')
    unit: Literal["d", "wd"] = "wd" if match.group(2) == "wd" else "d"
    return DueDuration(int(match.group(1)), unit)


@lru_cache(maxsize=8)
def _calendar(first_year: int) -> holidays.HolidayBase:
    """The China calendar from ``first_year`` on (a window of years wide enough for any deadline)."""
    return holidays.country_holidays("CN", years=range(first_year, first_year + 4))


def is_working_day(day: date) -> bool:
    """Whether ``day`` is a working day in mainland China (make-up working days included)."""
    return bool(_calendar(day.year - 1).is_working_day(day))


def deadline(moment: datetime, duration: DueDuration) -> date:
    """The last day of a deadline of ``duration`` counted from the China Standard Time day of ``moment``."""
    day = moment.astimezone(CHINA_STANDARD_TIME).date()
    if duration.unit == "d":
        return day + timedelta(days=duration.count)
    found = 0
    while found < duration.count:
        day += timedelta(days=1)
        found += is_working_day(day)
    return day


def is_overdue(due: date, done: datetime | None, now: datetime) -> bool:
    """A deadline is overdue when what it asks for was done after its last day, or is not done and that day is
    over (China Standard Time)."""
    moment = done if done is not None else now
    return moment.astimezone(CHINA_STANDARD_TIME).date() > due
