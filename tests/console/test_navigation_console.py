"""The console's frame: the navigation offers only pages that answer the viewer, refusals and misses are
the styled 403/404 pages (with DEBUG on too: never Django's URL-pattern listing), and the favicon."""
from __future__ import annotations

import re

import pytest
from django.test import override_settings

from tests.console.helpers import client_for
from tests.personas import CAST

pytestmark = pytest.mark.django_db

NAV = re.compile(r'<nav aria-label="Main">(.*?)</nav>', re.S)
HREF = re.compile(r'href="([^"]+)"')


def nav_links(html: str) -> list[str]:
    match = NAV.search(html)
    assert match, "the page has no main navigation"
    return HREF.findall(match.group(1))


@pytest.mark.parametrize("persona", sorted(CAST))
def test_every_navigation_link_opens_for_the_viewer(persona, people):
    # given
    user = getattr(people, persona)
    client = client_for(user)
    # when
    links = nav_links(client.get("/console/").content.decode())
    # then: every link answers 200 (the admin's index too)
    answers = {link: client.get(link).status_code for link in links}
    assert answers and all(code == 200 for code in answers.values()), answers


def test_the_outsider_is_offered_only_what_he_may_open(people):
    links = nav_links(client_for(people.outsider).get("/console/").content.decode())
    assert links == ["/console/", "/console/models/", "/console/approvals/", "/console/access/"]


@pytest.mark.parametrize(("persona", "present", "absent"), [
    ("auditor", {"/console/ledger/", "/console/exports/", "/console/legal-holds/", "/console/violations/",
                 "/console/identity-links/", "/console/siem/", "/admin/", "/console/environments/"}, set()),
    ("owner", {"/console/environments/"}, {"/console/ledger/", "/console/exports/", "/console/siem/", "/admin/"}),
])
def test_oversight_pages_are_offered_to_oversight_only(persona, present, absent, people):
    links = set(nav_links(client_for(getattr(people, persona)).get("/console/").content.decode()))
    assert present <= links and not (absent & links)


def test_pages_refused_to_the_outsider_are_not_in_his_navigation(people):
    # The converse of the test above: what the outsider cannot open is not offered.
    client = client_for(people.outsider)
    offered = set(nav_links(client.get("/console/").content.decode()))
    for page in ("/console/ledger/", "/console/exports/", "/console/legal-holds/", "/console/violations/",
                 "/console/identity-links/", "/console/siem/", "/console/environments/", "/admin/"):
        assert client.get(page).status_code != 200 and page not in offered, page


@override_settings(DEBUG=True)
@pytest.mark.parametrize("path", [
    "/console/models/987654/",        # an unknown object (raised Http404 in the view)
    "/console/no-such-page/",         # a URL that matches no route
    "/no-such-page/",
])
def test_misses_are_the_styled_404_even_with_debug(path, people):
    # when
    response = client_for(people.outsider).get(path)
    # then
    assert response.status_code == 404
    html = response.content.decode()
    assert "Not found" in html and 'aria-label="Main"' in html  # the console's page, with his navigation
    assert "URLconf" not in html and "console-dashboard" not in html  # no pattern listing
    assert "Using the URLconf" not in html and "technical_404" not in html


@override_settings(DEBUG=True)
def test_a_url_without_its_slash_is_still_redirected_with_debug(people):
    response = client_for(people.outsider).get("/console/models")
    assert response.status_code == 301 and response["Location"] == "/console/models/"


def test_misses_are_the_styled_404_without_debug(people):
    response = client_for(None).get("/no-such-page/")
    assert response.status_code == 404 and b"Not found" in response.content


@override_settings(DEBUG=True)
def test_api_misses_stay_problem_documents_with_debug(people):
    response = client_for(people.outsider).get("/api/v1/no-such-thing")
    assert response.status_code == 404 and response["Content-Type"] == "application/problem+json"


def test_the_favicon_is_linked_and_answered(people):
    client = client_for(people.outsider)
    assert b'rel="icon"' in client.get("/console/").content
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("console/favicon.svg")
    assert b'rel="icon"' in client_for(people.auditor).get("/admin/").content


@override_settings(DEBUG=True)
def test_a_permission_denied_raised_by_a_view_is_the_styled_403(rf, people):
    from django.core.exceptions import PermissionDenied
    from django.http import HttpResponse

    from web.console.chrome import ErrorPagesMiddleware

    request = rf.get("/console/some-page/")
    request.user = people.outsider
    middleware = ErrorPagesMiddleware(lambda r: HttpResponse())
    response = middleware.process_exception(request, PermissionDenied("secret detail"))
    assert response is not None and response.status_code == 403
    html = response.content.decode()
    assert "Not permitted" in html and "secret detail" not in html
    # The API keeps its problem documents (DRF's handler answers there).
    assert middleware.process_exception(rf.get("/api/v1/grants"), PermissionDenied()) is None


def test_a_server_error_outside_the_api_is_the_styled_500(rf):
    from web.api.problems import server_error

    try:
        raise RuntimeError("boom: a secret in the message")
    except RuntimeError:
        response = server_error(rf.get("/console/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong" in html and "boom" not in html and "X-Request-ID" in html
