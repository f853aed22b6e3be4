"""``{% sort_th table "key" %}``: a column header that sorts the table (web/console/tables.py)."""
from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from web.console.tables import Table

register = template.Library()

_ARROWS = {"ascending": "▲", "descending": "▼"}


@register.simple_tag
def sort_th(table: Table | None, key: str, label: str = "") -> SafeString:
    """A ``<th scope="col">`` whose label links to the table sorted by this column (descending when it is
    already ascending), with ``aria-sort`` on the active column; a plain header when the column does not sort,
    or, with ``label``, when the including page has no ``table`` (a partial shared with an unsorted page)."""
    header = table.headers.get(key) if isinstance(table, Table) else None
    if header is None:
        if not label:
            raise template.TemplateSyntaxError(f"sort_th: no column {key!r} and no label")
        return format_html('<th scope="col">{}</th>', label)
    if header.href is None:
        return format_html('<th scope="col">{}</th>', header.label)
    if header.aria_sort is None:
        return format_html('<th scope="col"><a class="sort" href="{}">{}</a></th>', header.href, header.label)
    return format_html(
        '<th scope="col" aria-sort="{}"><a class="sort" href="{}">{} <span aria-hidden="true">{}</span></a></th>',
        header.aria_sort, header.href, header.label, _ARROWS[header.aria_sort],
    )
