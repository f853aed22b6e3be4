"""The two ways a digest leaves: an e-mail (Django's e-mail framework) and a Slack-compatible chat webhook.

Each raises on any failure (the caller keeps the notifications and tries again later) and returns only once
the receiver accepted the message: the SMTP server took it (``send`` returned), or the webhook answered 2xx.
Errors never carry the webhook URL (a bearer secret): ``ChatError`` says what failed, not where.
"""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from integrations.addresses import is_public


@dataclass(frozen=True)
class Item:
    text: str
    url: str


class ChatError(Exception):
    """A chat webhook refused or could not be reached (the message never names the URL)."""


def _subject(items: Sequence[Item]) -> str:
    if len(items) == 1:
        return f"{settings.EMAIL_SUBJECT_PREFIX}{items[0].text}"[:200]
    return f"{settings.EMAIL_SUBJECT_PREFIX}{len(items)} notifications"


def _shown(items: Sequence[Item]) -> tuple[Sequence[Item], int]:
    limit = settings.NOTIFY_MAX_ITEMS
    return items[:limit], max(0, len(items) - limit)


def preferences_url() -> str:
    from django.urls import reverse
    return settings.CONSOLE_BASE_URL + reverse("console-notification-preferences")


def send_email(address: str, items: Sequence[Item]) -> None:
    """One message listing ``items`` to ``address``; raises (smtplib/OSError) unless the server accepted it."""
    shown, more = _shown(items)
    lines = ["Hello,", "", "the governance console has news for you:", ""]
    for item in shown:
        lines += [f"- {item.text}", f"  {item.url}"]
    if more:
        lines += ["", f"… and {more} more: {settings.CONSOLE_BASE_URL}/console/"]
    lines += ["", f"Choose what you receive, where and how often: {preferences_url()}"]
    message = EmailMessage(subject=_subject(items), body="\n".join(lines), from_email=settings.DEFAULT_FROM_EMAIL,
                           to=[address], connection=get_connection(fail_silently=False))
    message.send(fail_silently=False)


def _escape(text: str) -> str:
    """Slack mrkdwn control characters (a model name is data, not markup)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chat_payload(items: Sequence[Item]) -> dict[str, object]:
    """Slack's incoming-webhook JSON: ``text`` (the fallback) and one section block per item."""
    shown, more = _shown(items)
    text = items[0].text if len(items) == 1 else f"{len(items)} notifications from the governance console"
    blocks: list[dict[str, object]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"<{item.url}|{_escape(item.text)}>"}}
        for item in shown
    ]
    if more:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"… and {more} more in <{settings.CONSOLE_BASE_URL}/console/|the console>"}]})
    return {"text": _escape(text), "blocks": blocks}


def check_chat_url(url: str, *, resolve: bool = True) -> str:
    """``url`` if it may receive chat messages, else ``ValueError`` saying why (never echoing the URL).

    https only, no credentials in it, and (unless ``NOTIFY_CHAT_ALLOW_PRIVATE``) a host whose every address is
    public: a person's webhook URL must not make this server reach into its own network (SSRF)."""
    url = (url or "").strip()
    if len(url) > 500:
        raise ValueError("the chat webhook URL is too long (500 characters at most)")
    parts = urlsplit(url)
    allow_private = settings.NOTIFY_CHAT_ALLOW_PRIVATE
    if parts.scheme != "https" and not (allow_private and parts.scheme == "http"):
        raise ValueError("the chat webhook URL must start with https://")
    if not parts.hostname or parts.username or parts.password:
        raise ValueError("the chat webhook URL needs a host name and no user name or password")
    if allow_private or not resolve:
        return url
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise ValueError("the chat webhook's host name does not resolve") from None
    for info in infos:
        if not is_public(str(info[4][0])):
            raise ValueError("the chat webhook must be on a public address (not loopback, private or link-local)")
    return url


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is refused, not followed: it could point the next request at an internal address."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def send_chat(url: str, items: Sequence[Item]) -> None:
    """POST the Slack-format message; ``ChatError`` unless the receiver answered 2xx."""
    try:
        check_chat_url(url)  # again at send time: the name may resolve elsewhere now
    except ValueError as exc:
        raise ChatError(str(exc)) from None
    body = json.dumps(chat_payload(items)).encode()
    # check_chat_url admitted only https (or http when private targets are allowed): never file: or custom schemes.
    request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310
                                     headers={"Content-Type": "application/json", "User-Agent": "governance-notify"})
    try:
        with _opener.open(request, timeout=settings.NOTIFY_CHAT_TIMEOUT) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise ChatError(f"the chat webhook answered HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise ChatError(f"the chat webhook could not be reached ({type(exc).__name__})") from None
    if not 200 <= status < 300:
        raise ChatError(f"the chat webhook answered HTTP {status}")
