"""The console's frame outside any one page: the favicon and the styled error pages.

Error pages: 403, 404 and 500 are the console's own templates (``templates/403.html``...) for every
path except ``/api/``, which answers problem documents (``web.api.problems``). Django shows its
technical 404 page, which lists the URL patterns, when ``DEBUG`` is on; ``ErrorPagesMiddleware``
renders the styled page instead for a refusal or a miss, so a misconfigured ``DEBUG=1`` never shows a
visitor the site's map. A 500 keeps Django's debug page under ``DEBUG`` (it is the developer's
traceback) and is the styled page otherwise.
"""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import NoReverseMatch, Resolver404, resolve, reverse

#: One message whether the object does not exist or the viewer may not see it: the page tells nothing apart.
NOT_FOUND = "There is nothing here, or nothing you are permitted to see."
NOT_PERMITTED = "You are not permitted to open this page."


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _has_console(request: HttpRequest) -> bool:
    """Whether the request's URL map routes the console (the styled pages link to it). A map without
    it (a test's own ``urlconf``) keeps Django's plain pages rather than failing to render these."""
    try:
        reverse("console-dashboard", urlconf=getattr(request, "urlconf", None))
    except NoReverseMatch:
        return False
    return True


def not_found_page(request: HttpRequest) -> HttpResponse:
    """The styled 404: no detail of what was looked for beyond the path the visitor typed."""
    return render(request, "404.html", {"message": NOT_FOUND}, status=404)


def denied_page(request: HttpRequest) -> HttpResponse:
    return render(request, "403.html", {"message": NOT_PERMITTED}, status=403)


def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico``: browsers ask for it whatever the page says; the icon is an SVG static file."""
    return HttpResponsePermanentRedirect(static("console/favicon.svg"))


class ErrorPagesMiddleware:
    """Styled 403/404 pages outside ``/api/``, with ``DEBUG`` on or off (see the module docstring).

    After ``AuthenticationMiddleware`` (the page's navigation is the viewer's) and after
    ``CommonMiddleware``, whose ``APPEND_SLASH`` redirect still turns a 404 for ``/console/ledger``
    into ``/console/ledger/``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # With DEBUG off, handler404 renders the same page; with it on, a URL that matches nothing
        # never reaches a view (nor process_exception), so it is caught here before Django's debug page.
        if settings.DEBUG and not _is_api(request) and _has_console(request):
            try:
                resolve(request.path_info, getattr(request, "urlconf", None))
            except Resolver404:
                return not_found_page(request)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if _is_api(request) or not _has_console(request):
            return None
        if isinstance(exception, Http404):
            return not_found_page(request)
        if isinstance(exception, PermissionDenied):
            return denied_page(request)
        return None
