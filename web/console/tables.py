"""Console tables: sorting by whitelisted columns, the total, pages that jump, and "download this view as CSV".

One mechanism for every paginated console list. A view builds its filtered queryset from the viewer's
visibility selector exactly as before, then hands it to :func:`table` (the HTML page) or, when
``?format=csv`` asks for it (:func:`wants_csv`), to :func:`csv_response`. Both order the SAME queryset the
same way, so the CSV holds exactly the rows of the view, all pages of it, and never a row the page would
not show.

Contracts:

* ``?sort=key`` / ``?sort=-key``: ``key`` must be a sortable :class:`Column` of the table's spec; anything
  else is ignored (the default order is used and the viewer is told). User input never reaches
  ``order_by``: only the column's declared expressions do, followed by ``pk`` in the same direction so
  that pages never overlap or skip rows.
* ``?page=N``: any bad value lands on the nearest valid page (non-numbers on the first).
* ``?format=csv``: every row of the view up to :data:`CSV_MAX_ROWS`, read in chunks of :data:`CSV_CHUNK`
  (one query per chunk, plus the chunk's own batch lookups: no query per row), streamed. Cells that a
  spreadsheet would run as a formula are prefixed with ``'`` (OWASP "CSV injection").
"""
from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.db.models import F, OrderBy, QuerySet
from django.http import HttpRequest, QueryDict, StreamingHttpResponse
from django.utils import timezone

from web.console.base import PAGE_SIZE

# The most rows one CSV download holds: beyond it a spreadsheet is the wrong tool (use an audit export).
CSV_MAX_ROWS = 50_000
# Rows read per query while streaming a CSV.
CSV_CHUNK = 500
# A cell beginning with one of these is a formula to Excel, LibreOffice and Sheets (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Parameters that select how a view is shown, not which rows: never carried into the other links.
_VIEW_PARAMS = ("page", "sort", "format")
# Page links shown either side of the current page.
_AROUND = 2

Ordering = str | F | OrderBy


@dataclass(frozen=True)
class Column:
    """One column. ``order``: ascending ORM ordering (field paths or expressions), empty when the column
    is not sortable. ``value``: the CSV cell from a (prepared) row, None when the column is not in the CSV.
    ``desc_first``: the first click sorts descending (dates, counts)."""

    key: str
    label: str
    order: tuple[Ordering, ...] = ()
    value: Callable[[Any], Any] | None = None
    desc_first: bool = False

    @property
    def sortable(self) -> bool:
        return bool(self.order)


@dataclass(frozen=True)
class TableSpec:
    """A console table. ``name``: the CSV file name's stem; ``default_sort``: e.g. ``"-created"`` (must be
    a sortable column); ``prepare``: turns a chunk of model objects into the rows the columns read (batch
    lookups live there, once per chunk); ``page_size``: rows per HTML page."""

    name: str
    columns: tuple[Column, ...]
    default_sort: str
    prepare: Callable[[list[Any]], Sequence[Any]] | None = None
    page_size: int = PAGE_SIZE

    def column(self, key: str) -> Column | None:
        return next((c for c in self.columns if c.key == key and c.sortable), None)

    def __post_init__(self) -> None:
        if self.column(self.default_sort.lstrip("-")) is None:
            raise ValueError(f"{self.name}: the default sort {self.default_sort!r} is not a sortable column")


@dataclass(frozen=True)
class Header:
    label: str
    href: str | None  # None: not sortable
    aria_sort: str | None  # "ascending"/"descending" on the active column


@dataclass
class Table:
    """What templates get: the page, the total, the links (``query``: the other parameters, for the pager
    as ``qs`` was), the headers and the hidden fields of the go-to-page form."""

    spec: TableSpec
    page: Page[Any]
    sort: str
    query: str
    hidden: list[tuple[str, str]]
    headers: dict[str, Header] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.page.paginator.count

    @property
    def link_prefix(self) -> str:
        return f"{self.query}&" if self.query else ""

    @property
    def csv_capped(self) -> bool:
        return self.total > CSV_MAX_ROWS

    @property
    def csv_max_rows(self) -> int:
        return CSV_MAX_ROWS

    @property
    def page_numbers(self) -> list[int | None]:
        """1, the pages around the current one, the last; None where pages are left out (an ellipsis)."""
        last, here = self.page.paginator.num_pages, self.page.number
        shown = sorted({1, last, *range(max(1, here - _AROUND), min(last, here + _AROUND) + 1)})
        out: list[int | None] = []
        for n in shown:
            if out and n - (out[-1] or 0) > 1:
                out.append(None)
            out.append(n)
        return out


def wants_csv(request: HttpRequest) -> bool:
    """A GET with ``?format=csv`` (never a POST: its answer is the action's, e.g. a token shown once)."""
    return request.method in ("GET", "HEAD") and request.GET.get("format") == "csv"


def _sort(request: HttpRequest, spec: TableSpec, *, tell: bool) -> tuple[Column, bool, str]:
    raw = (request.GET.get("sort") or "").strip()[:100]
    column = spec.column(raw.removeprefix("-")) if raw else None
    if column is None:
        if raw and tell:
            messages.info(request, f"Cannot sort by {raw!r} here: shown in the default order.")
        raw = spec.default_sort
        column = spec.column(raw.removeprefix("-"))
        assert column is not None  # checked in TableSpec.__post_init__
    return column, raw.startswith("-"), ("-" if raw.startswith("-") else "") + column.key


def _flip(item: Ordering, descending: bool) -> Ordering:
    if not descending:
        return item
    if isinstance(item, str):
        return item[1:] if item.startswith("-") else f"-{item}"
    if isinstance(item, OrderBy):
        flipped = item.copy()
        flipped.reverse_ordering()
        return flipped
    return item.desc()


def ordered(
    request: HttpRequest, spec: TableSpec, rows: QuerySet[Any], *, tell: bool = False
) -> tuple[QuerySet[Any], str]:
    """``rows`` in the requested (whitelisted) order with a ``pk`` tiebreak, and the effective sort."""
    column, descending, sort = _sort(request, spec, tell=tell)
    keys = [_flip(item, descending) for item in column.order]
    return rows.order_by(*keys, "-pk" if descending else "pk"), sort


def _page_number(raw: str | None, num_pages: int) -> int:
    """The nearest valid page: non-numbers give 1, numbers are clamped to 1..num_pages."""
    try:
        number = int((raw or "1").strip()[:20])
    except ValueError:
        return 1
    return min(max(number, 1), num_pages)


def _params(request: HttpRequest, drop: Iterable[str]) -> QueryDict:
    params = request.GET.copy()
    for name in drop:
        params.pop(name, None)
    return params


def table(request: HttpRequest, spec: TableSpec, rows: QuerySet[Any]) -> Table:
    """The requested page of ``rows`` (already filtered by the viewer's selector), sorted and linked."""
    sorted_rows, sort = ordered(request, spec, rows, tell=True)
    paginator = Paginator(sorted_rows, spec.page_size)
    page = paginator.page(_page_number(request.GET.get("page"), paginator.num_pages))
    keep = _params(request, _VIEW_PARAMS)
    base = keep.urlencode()  # the filters alone: each header link adds its own sort
    if sort != spec.default_sort:
        keep["sort"] = sort  # the effective sort: a refused key is not carried into the links
    headers = {}
    for column in spec.columns:
        if not column.sortable:
            headers[column.key] = Header(column.label, None, None)
            continue
        active = sort.removeprefix("-") == column.key
        descending = sort.startswith("-")
        if active:
            target = column.key if descending else f"-{column.key}"
        else:
            target = f"-{column.key}" if column.desc_first else column.key
        aria = ("descending" if descending else "ascending") if active else None
        headers[column.key] = Header(column.label, f"?{base}&sort={target}" if base else f"?sort={target}", aria)
    return Table(
        spec=spec, page=page, sort=sort, query=keep.urlencode(),
        hidden=[(k, v) for k, values in keep.lists() for v in values], headers=headers,
    )


def username_of(user: Any) -> str:
    """A person column's cell: the username, "" for nobody (the CSV holds what the page shows)."""
    return user.get_username() if user is not None else ""


def csv_cell(value: Any) -> str:
    """A value as a CSV cell: times in UTC ISO 8601, and text that a spreadsheet would evaluate quoted."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if timezone.is_aware(value) else value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)  # a number is never a formula; "-5" stays a number
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_START) else text


class _Echo:
    """A file-like object whose ``write`` hands the line back (csv.writer into a generator)."""

    def write(self, value: str) -> str:
        return value


def csv_stream(header: Sequence[str], rows: Iterable[Sequence[Any]], *, name: str,
               total: int | None = None) -> StreamingHttpResponse:
    """A streamed ``text/csv`` attachment named ``<name>-<UTC time>.csv``; ``total`` (when known) is sent as
    ``X-Total-Count`` with ``X-Truncated: true`` when the file holds fewer rows than that."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([csv_cell(v) for v in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    if total is not None:
        response["X-Total-Count"] = str(total)
        response["X-Truncated"] = "true" if total > CSV_MAX_ROWS else "false"
    return response


def csv_response(request: HttpRequest, spec: TableSpec, rows: QuerySet[Any]) -> StreamingHttpResponse:
    """Every row of the view (all pages, up to ``CSV_MAX_ROWS``) in the view's order, as a CSV download."""
    sorted_rows, _sort_key = ordered(request, spec, rows)
    columns = [c for c in spec.columns if c.value is not None]
    prepare = spec.prepare or (lambda chunk: chunk)

    def records() -> Iterator[list[Any]]:
        # Offset chunks over a total order (pk tiebreak): each chunk is one query plus prepare's batch lookups.
        for start in range(0, CSV_MAX_ROWS, CSV_CHUNK):
            chunk = list(sorted_rows[start:min(start + CSV_CHUNK, CSV_MAX_ROWS)])
            for row in prepare(chunk):
                yield [c.value(row) for c in columns if c.value is not None]
            if len(chunk) < CSV_CHUNK:
                return

    return csv_stream([c.label for c in columns], records(), name=spec.name, total=rows.count())
