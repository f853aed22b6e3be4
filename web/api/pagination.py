"""Pagination: cursors for the ledger (stable under appends), pages for everything else."""
from __future__ import annotations

from rest_framework.pagination import CursorPagination, PageNumberPagination


class StandardPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class SeqCursorPagination(CursorPagination):
    """Ledger entries by ``seq``: a cursor stays valid however much is appended."""

    ordering = "seq"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
