"""A ChangeList whose date drill-down reads a handful of index probes, not the whole table.

Django's `date_hierarchy` tag lists the years/months/days present with `SELECT DISTINCT
date_trunc(...)` over every matching row; here each present period is found by jumping to the
next `MIN(sent_at)`, so the cost follows the number of periods shown, not the number of rows.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime
from typing import Any

from django.contrib.admin.views.main import ChangeList
from django.db.models import Max, Min, QuerySet
from django.utils import formats, timezone
from django.utils.text import capfirst


class HorsiesChangeList(ChangeList):
    def cheap_date_hierarchy(self) -> dict[str, Any]:
        """The context Django's `admin/date_hierarchy.html` expects."""
        field = str(self.date_hierarchy)
        names = {k: f"{field}__{k}" for k in ("year", "month", "day")}
        year, month, day = (self.params.get(names[k]) for k in ("year", "month", "day"))
        verbose = getattr(self.model._meta.get_field(field), "verbose_name", field)

        def link(filters: dict[str, Any]) -> str:
            return str(self.get_query_string(filters, [f"{field}__"]))

        if not (year or month or day):
            year, month = self._single_year_month(field)
        base: dict[str, Any] = {"show": True, "field_name": verbose}
        if year and month and day:
            the_day = date(int(year), int(month), int(day))
            back = {
                "link": link({names["year"]: year, names["month"]: month}),
                "title": capfirst(formats.date_format(the_day, "YEAR_MONTH_FORMAT")),
            }
            return {
                **base,
                "back": back,
                "choices": [{"title": capfirst(formats.date_format(the_day, "MONTH_DAY_FORMAT"))}],
            }
        if year and month:
            y, m = int(year), int(month)
            starts = [_at(y, m, d) for d in range(1, calendar.monthrange(y, m)[1] + 1)]
            end = _at(y + (m == 12), m % 12 + 1, 1)
            days = [
                timezone.localtime(s).date() for s in _present(self.queryset, field, starts, end)
            ]
            return {
                **base,
                "back": {"link": link({names["year"]: year}), "title": str(year)},
                "choices": [
                    {
                        "link": link(
                            {names["year"]: year, names["month"]: month, names["day"]: d.day}
                        ),
                        "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT")),
                    }
                    for d in days
                ],
            }
        if year:
            y = int(year)
            starts = [_at(y, m, 1) for m in range(1, 13)]
            months = [
                timezone.localtime(s).date()
                for s in _present(self.queryset, field, starts, _at(y + 1, 1, 1))
            ]
            return {
                **base,
                "back": {"link": link({}), "title": "All dates"},
                "choices": [
                    {
                        "link": link({names["year"]: year, names["month"]: d.month}),
                        "title": capfirst(formats.date_format(d, "YEAR_MONTH_FORMAT")),
                    }
                    for d in months
                ],
            }
        first_last = self._range(field)
        if first_last is None:
            return {**base, "choices": []}
        first, last = first_last
        starts = [_at(y, 1, 1) for y in range(first.year, last.year + 1)]
        years = [
            timezone.localtime(s).year
            for s in _present(self.queryset, field, starts, _at(last.year + 1, 1, 1))
        ]
        return {
            **base,
            "choices": [{"link": link({names["year"]: str(y)}), "title": str(y)} for y in years],
        }

    def _range(self, field: str) -> tuple[datetime, datetime] | None:
        found = self.queryset.aggregate(first=Min(field), last=Max(field))
        if not found["first"]:
            return None
        return timezone.localtime(found["first"]), timezone.localtime(found["last"])

    def _single_year_month(self, field: str) -> tuple[str | None, str | None]:
        """Like Django: start at the year (and month) when every row falls inside one."""
        found = self._range(field)
        if found is None or found[0].year != found[1].year:
            return None, None
        first, last = found
        return str(first.year), (str(first.month) if first.month == last.month else None)


def _at(year: int, month: int, day: int) -> datetime:
    return timezone.make_aware(datetime(year, month, day))


def _present(
    queryset: QuerySet[Any], field: str, starts: list[datetime], end: datetime
) -> list[datetime]:
    """The period starts that hold at least one row: one MIN() probe per present period."""
    found: list[datetime] = []
    i = 0
    while i < len(starts):
        lookup = {f"{field}__gte": starts[i], f"{field}__lt": end}
        nxt = queryset.filter(**lookup).aggregate(m=Min(field))["m"]
        if nxt is None:
            break
        while i + 1 < len(starts) and starts[i + 1] <= nxt:
            i += 1
        found.append(starts[i])
        i += 1
    return found
