"""One time format in the console (``web/templatetags/console.py``), in the viewer's time zone (a per-person
preference, ``web.preferences``) with UTC on hover."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.http import HttpResponse
from django.template import Context, Template
from django.utils import timezone

from audit.models import Entry
from tests.console.helpers import client_for, seed_ledger
from web.models import ConsolePreference
from web.preferences import SESSION_KEY, PreferenceError, TimeZoneMiddleware, preference_update
from web.templatetags.console import ago, relative, when, when_text

pytestmark = pytest.mark.django_db

WINTER = datetime(2026, 12, 6, 22, 54, 16, 123456, tzinfo=UTC)


def test_when_in_utc():
    assert when(WINTER) == ('<time datetime="2026-12-06T22:54:16Z" title="2026-12-06 22:54:16 UTC">'
                            "2026-12-06 22:54:16 UTC</time>")


def test_when_in_another_zone_keeps_utc_on_hover():
    with timezone.override("Europe/Paris"):
        assert when(WINTER) == ('<time datetime="2026-12-06T22:54:16Z" title="2026-12-06 22:54:16 UTC">'
                                "2026-12-06 23:54:16 CET</time>")
        assert when_text(WINTER) == "2026-12-06 23:54:16 CET"
    with timezone.override("Asia/Kolkata"):
        assert "2026-12-07 04:24:16 IST" in when(WINTER)


def test_when_reads_the_ledgers_iso_strings_and_dates():
    # The ledger stores its timestamps as ISO text; the explorer glued date and time together before.
    assert "2026-12-06 22:54:16 UTC</time>" in when("2026-12-06T22:54:16.123456Z")
    assert "2026-12-06 22:54:16 UTC</time>" in when("2026-12-06T22:54:16")  # naive: UTC
    assert when(date(2026, 12, 6)) == '<time datetime="2026-12-06">2026-12-06</time>'
    assert when(None) == "" and when("") == ""
    assert when("not a time") == "not a time"


def test_an_odd_string_is_escaped_by_the_template():
    html = Template("{% load console %}{{ t|when }}").render(Context({"t": "<b>x</b>"}))
    assert html == "&lt;b&gt;x&lt;/b&gt;"


def test_relative_times():
    now = WINTER
    assert relative(now - timedelta(seconds=20), now) == "just now"
    assert relative(now - timedelta(minutes=3, seconds=5), now) == "3\xa0minutes ago"
    assert relative(now + timedelta(days=2, hours=1), now) == "in 2\xa0days"
    assert 'title="2026-12-06 22:54:16 UTC (2026-12-06 22:54:16 UTC)"' in ago(WINTER)


def test_the_preference_changes_the_zone_of_the_pages(people):
    # given
    client = client_for(people.owner)
    page = client.get("/console/preferences/")
    assert page.status_code == 200 and b'<option value="UTC" selected>' in page.content
    # when
    response = client.post("/console/preferences/", {"time_zone": "Europe/Paris"}, follow=True)
    # then
    assert response.status_code == 200
    assert ConsolePreference.objects.get(user=people.owner).time_zone == "Europe/Paris"
    assert b'<option value="Europe/Paris" selected>' in response.content
    assert b" CET</time>" in response.content or b" CEST</time>" in response.content


def test_the_zone_is_loaded_at_sign_in(people):
    preference_update(actor=people.owner, user=people.owner, time_zone="Asia/Tokyo")
    page = client_for(people.owner).get("/console/preferences/")
    assert b" JST</time>" in page.content


@pytest.mark.parametrize(("path", "zone_seen"), [("/console/", "Asia/Tokyo"), ("/api/v1/grants", "UTC")])
def test_the_zone_is_active_for_console_pages_only(path, zone_seen, rf, settings):
    # given: a session that holds the viewer's zone
    request = rf.get(path)
    request.COOKIES[settings.SESSION_COOKIE_NAME] = "s"
    request.session = {SESSION_KEY: "Asia/Tokyo"}  # type: ignore[assignment]
    seen: list[str] = []

    def view(_request):
        seen.append(timezone.get_current_timezone_name())
        return HttpResponse()

    # when
    TimeZoneMiddleware(view)(request)
    # then: the API answers UTC whatever the caller's preference, and nothing outlives the request
    assert seen == [zone_seen]
    assert timezone.get_current_timezone_name() == "UTC"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "", "utc "*30])
def test_a_bad_zone_is_a_form_error_and_nothing_is_saved(zone, people):
    client = client_for(people.owner)
    response = client.post("/console/preferences/", {"time_zone": zone})
    assert response.status_code == 400
    assert b"is not a time zone name" in response.content
    assert not ConsolePreference.objects.exists()


def test_a_person_changes_only_their_own_preference(people):
    with pytest.raises(PreferenceError):
        preference_update(actor=people.infosec, user=people.owner, time_zone="UTC")
    assert not ConsolePreference.objects.exists()


def test_preferences_need_a_session():
    response = client_for(None).get("/console/preferences/")
    assert response.status_code == 302 and "/console/login/" in response["Location"]


def test_the_ledger_explorer_shows_its_times_in_the_viewers_zone_with_utc_on_hover(people):
    # given: an entry at a known moment, and an auditor in Paris
    seed_ledger(1)
    entry = Entry.objects.get(event_type="auth.user_registered")
    moment = datetime.fromisoformat(entry.timestamp.replace("Z", "+00:00"))
    preference_update(actor=people.auditor, user=people.auditor, time_zone="Europe/Paris")
    # when
    html = client_for(people.auditor).get("/console/ledger/").content.decode()
    # then: date and time apart, in Paris, with the UTC time in the title
    paris = moment.astimezone(ZoneInfo("Europe/Paris"))
    assert (f'title="{moment:%Y-%m-%d %H:%M:%S} UTC">{paris:%Y-%m-%d %H:%M:%S} {paris.tzname()}</time>'
            in html)
