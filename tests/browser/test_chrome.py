"""The console's frame in a browser: the styled 404 with DEBUG on, and times in the viewer's zone."""
from __future__ import annotations

from typing import Any

import pytest

from tests.browser.helpers import login, shot
from tests.personas import make_person

pytestmark = pytest.mark.browser


def test_outsider_gets_the_styled_404_even_with_debug(live_url: str, page: Any, settings: Any) -> None:
    # given: a deployment left with DEBUG on (the live server reads the same settings)
    settings.DEBUG = True
    outsider = make_person("outsider")
    login(page, live_url, outsider.username)
    for path in ("/console/models/987654/", "/console/no-such-page/"):
        # when
        response = page.goto(live_url + path)
        # then: the console's page with his navigation, not Django's list of URL patterns
        assert response is not None and response.status == 404, path
        assert page.get_by_role("heading", name="Not found").is_visible()
        assert page.get_by_role("navigation", name="Main").get_by_role("link", name="Ledger").count() == 0
        assert "URLconf" not in page.content()
    shot(page, "outsider-styled-404")


def test_times_follow_the_preference_with_utc_on_hover(live_url: str, page: Any) -> None:
    # given
    owner = make_person("owner")
    login(page, live_url, owner.username)
    page.goto(f"{live_url}/console/preferences/")
    assert "UTC" in page.locator("#pref-tz-help time").inner_text()
    # when
    page.get_by_label("Time zone").select_option("Asia/Tokyo")
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    # then
    assert page.get_by_text("Times are now shown in Asia/Tokyo.").is_visible()
    shown = page.locator("#pref-tz-help time")
    assert shown.inner_text().endswith(" JST")
    assert shown.get_attribute("title").endswith(" UTC")  # the hover
    assert shown.get_attribute("datetime").endswith("Z")
    shot(page, "preferences-time-zone")
