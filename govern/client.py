"""The HTTP side of ``govern``: configuration, one request with its retries, problem details as errors.

Standard library only (urllib, ssl), so the client needs nothing the server image lacks and nothing
a CI runner has to install. Contracts:

* The token is read from ``--token-file``, ``GOVERN_TOKEN_FILE`` or ``GOVERN_TOKEN`` (in that
  order), never from the command line (where ``ps`` and shell history would show it), and never
  printed: errors name where it came from, not what it is.
* TLS is verified (the system's CAs, or ``GOVERN_CA_FILE``). Plain ``http://`` is refused except
  to a loopback address, where the token never leaves the machine.
* Redirects are never followed: urllib would resend the ``Authorization`` header to wherever the
  redirect points. A 3xx is an error naming the place it pointed to.
* Only what cannot do harm twice is retried (GETs, POSTs carrying an ``Idempotency-Key``, runtime
  events, which the server deduplicates by ``event_id``): on a connection failure, 502/503/504, 429
  and ``409 idempotency_in_progress``, waiting ``Retry-After`` (capped) or a doubling backoff.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import random
import ssl
import string
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, BinaryIO

from govern import exits

API_PREFIX = "/api/v1"
USER_AGENT = "govern/1"
# Seconds one HTTP exchange may take (connect, send, first byte); downloads are read in chunks after it.
REQUEST_TIMEOUT = 60.0
ATTEMPTS = 4
MAX_RETRY_AFTER = 60.0
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "-_.~+/=")


class CliError(Exception):
    """A failure the command reports in one message and an exit status (never a traceback)."""

    def __init__(self, message: str, exit_code: int, *, details: list[str] | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.details = details or []
        self.request_id = request_id


class ApiError(CliError):
    """The API answered with an error status; ``problem`` is its problem-details document (or {})."""

    def __init__(self, status: int, problem: dict[str, Any], message: str, exit_code: int, *,
                 details: list[str], request_id: str | None) -> None:
        super().__init__(message, exit_code, details=details, request_id=request_id)
        self.status = status
        self.problem = problem
        self.code = str(problem.get("code") or "")
        self.retry_after: float | None = None


def usage(message: str) -> CliError:
    return CliError(message, exits.USAGE)


@dataclass(frozen=True)
class Config:
    url: str  # scheme://host[:port][/prefix], no trailing slash
    token: str = field(repr=False)
    ca_file: str | None = None
    verbose: bool = False


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(raw: str) -> str:
    """The base URL, normalised; CliError(USAGE) when it is not one the client may send a token to."""
    parsed = urllib.parse.urlsplit(raw.strip())
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise usage(f"GOVERN_URL must be an https:// URL with a host, e.g. https://governance.internal (got {raw!r})")
    if parsed.username is not None or parsed.password is not None:
        raise usage("GOVERN_URL must not carry credentials; the token comes from GOVERN_TOKEN or a token file")
    if parsed.query or parsed.fragment:
        raise usage("GOVERN_URL must not have a query or fragment")
    if parsed.scheme == "http" and not _is_loopback(parsed.hostname):
        raise usage("GOVERN_URL is plain http:// to a host that is not this machine: the token would cross the "
                    "network unencrypted. Use https:// (http:// is only accepted for 127.0.0.1, ::1 and localhost)")
    path = parsed.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)]
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))


def read_token(token_file: str | None, environ: dict[str, str]) -> str:
    """The API token: ``--token-file``, else ``GOVERN_TOKEN_FILE``, else ``GOVERN_TOKEN``; never echoed."""
    source = token_file or environ.get("GOVERN_TOKEN_FILE") or ""
    if source:
        where = f"the token file {source}"
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise usage(f"cannot read {where}: {type(exc).__name__}") from None
    else:
        where = "GOVERN_TOKEN"
        text = environ.get("GOVERN_TOKEN", "")
        if not text:
            raise usage("no API token: set GOVERN_TOKEN (from your CI's secret store) or GOVERN_TOKEN_FILE, "
                        "or pass --token-file")
    token = text.strip()
    # One line of token characters: a pasted header ("Bearer ..."), two lines or a stray quote is refused here,
    # without showing it, instead of being sent and answered 401.
    if not token or not set(token) <= _TOKEN_CHARS:
        raise usage(f"{where} does not hold one API token (expected one line like mlg_...; it is not shown)")
    return token


def load_config(*, url: str | None, token_file: str | None, verbose: bool,
                environ: dict[str, str] | None = None) -> Config:
    env = dict(os.environ if environ is None else environ)
    raw_url = url or env.get("GOVERN_URL", "")
    if not raw_url:
        raise usage("no server: set GOVERN_URL (e.g. https://governance.internal) or pass --url")
    ca_file = env.get("GOVERN_CA_FILE") or None
    if ca_file is not None and not Path(ca_file).is_file():
        raise usage(f"GOVERN_CA_FILE {ca_file} is not a readable file")
    return Config(url=check_url(raw_url), token=read_token(token_file, env), ca_file=ca_file, verbose=verbose)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuses every redirect: the request (with its Authorization header) goes nowhere it was not sent."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes = b""

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise CliError("the server's answer is not JSON (is GOVERN_URL the governance server?)",
                           exits.UNAVAILABLE, request_id=self.request_id) from None

    @property
    def request_id(self) -> str | None:
        return self.headers.get("X-Request-ID")


def _retry_after(headers: Message | None, attempt: int) -> float:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        seconds = None
    if seconds is None or seconds < 0:
        seconds = 2.0 ** attempt * 0.5 + random.uniform(0, 0.25)  # noqa: S311 (jitter, not a secret)
    return min(seconds, MAX_RETRY_AFTER)


def _exit_for(status: int) -> int:
    if status in (401, 403):
        return exits.AUTH
    if status == 404:
        return exits.NOT_FOUND
    if status == 409:
        return exits.CONFLICT
    if 400 <= status < 500 and status not in (408, 429):
        return exits.USAGE
    return exits.UNAVAILABLE


def api_error(status: int, headers: Message, body: bytes) -> ApiError:
    """The CliError for an error answer: the problem document's title and detail, and its field errors."""
    request_id = headers.get("X-Request-ID")
    problem: dict[str, Any] = {}
    if "json" in (headers.get("Content-Type") or ""):
        try:
            loaded = json.loads(body)
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            problem = loaded
    if 300 <= status < 400:
        where = headers.get("Location") or "(no Location)"
        message = (f"the server answered {status} redirecting to {where}; not followed (the token would go "
                   "along): set GOVERN_URL to the final address")
        return ApiError(status, problem, message, exits.UNAVAILABLE, details=[], request_id=request_id)
    if problem:
        title = str(problem.get("title") or f"HTTP {status}")
        detail = str(problem.get("detail") or "")
        message = f"{title} ({status}): {detail}" if detail else f"{title} ({status})"
        listed = problem.get("errors")
        errors: list[Any] = listed if isinstance(listed, list) else []
        details = [f"{e.get('field', '')}: {e.get('message', '')}" for e in errors if isinstance(e, dict)]
    else:
        message = f"HTTP {status} from the server, without a problem document (a proxy in between?)"
        details = []
    error = ApiError(status, problem, message, _exit_for(status), details=details, request_id=request_id)
    error.retry_after = _retry_after(headers, 0) if headers.get("Retry-After") is not None else None
    return error


class Client:
    """Requests to ``<url>/api/v1``; each returns a 2xx Response or raises CliError/ApiError."""

    def __init__(self, config: Config, *, log: Any = None, sleep: Any = time.sleep) -> None:
        self.config = config
        self.log = log or (lambda message: print(message, file=sys.stderr))
        self.sleep = sleep
        context = ssl.create_default_context(cafile=config.ca_file)
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirect())

    def url(self, path: str) -> str:
        return self.config.url + API_PREFIX + path

    def _request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> urllib.request.Request:
        request = urllib.request.Request(self.url(path), data=body, method=method)  # noqa: S310 (checked scheme)
        request.add_header("Authorization", f"Bearer {self.config.token}")
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", USER_AGENT)
        for name, value in headers.items():
            request.add_header(name, value)
        return request

    def call(self, method: str, path: str, *, json_body: Any = None, raw: bytes | None = None,
             content_type: str = "application/json", idempotency_key: str | None = None,
             retry: bool | None = None, sink: BinaryIO | None = None) -> Response:
        """One API request. ``retry`` (default: GETs and requests with an idempotency key) retries
        what the server did not carry out. With ``sink`` a 2xx body is streamed into it, not kept."""
        headers: dict[str, str] = {}
        body = raw
        if json_body is not None:
            body = json.dumps(json_body).encode()
        if body is not None:
            headers["Content-Type"] = content_type
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        may_retry = (method == "GET" or idempotency_key is not None) if retry is None else retry
        attempts = ATTEMPTS if may_retry else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                with self._opener.open(self._request(method, path, body, headers), timeout=REQUEST_TIMEOUT) as raw_rsp:
                    response = Response(raw_rsp.status, raw_rsp.headers)
                    if self.config.verbose:
                        self.log(f"{method} {path} → {raw_rsp.status} (request id {response.request_id})")
                    if sink is not None:
                        try:
                            while chunk := raw_rsp.read(1 << 20):
                                sink.write(chunk)
                        except OSError as exc:
                            # Part of the body is in the sink: a retry would append to it, so this is final.
                            raise CliError(f"the download broke off: {exc}", exits.UNAVAILABLE) from None
                    else:
                        response.body = raw_rsp.read()
                    return response
            except urllib.error.HTTPError as exc:
                error_body = exc.read() if exc.fp is not None else b""
                error = api_error(exc.code, exc.headers, error_body)
                if self.config.verbose:
                    self.log(f"{method} {path} → {exc.code} (request id {error.request_id})")
                in_progress = exc.code == 409 and error.code == "idempotency_in_progress"
                transient = exc.code in RETRYABLE_STATUS or in_progress
                if not transient or last:
                    raise error from None
                wait = _retry_after(exc.headers, attempt)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, ssl.SSLCertVerificationError) or isinstance(exc, ssl.SSLCertVerificationError):
                    why = getattr(reason, "verify_message", None) or reason
                    raise CliError(f"TLS: the server's certificate is not trusted ({why}); set GOVERN_CA_FILE to "
                                   "your CA's certificate", exits.UNAVAILABLE) from None
                if last:
                    raise CliError(f"cannot reach {self.config.url}: {reason}", exits.UNAVAILABLE) from None
                wait = _retry_after(None, attempt)
            self.log(f"retrying {method} {path} in {wait:.1f} s")
            self.sleep(wait)
        raise AssertionError("unreachable")  # the loop returns or raises

    def get_json(self, path: str) -> Any:
        return self.call("GET", path).json()

    def download(self, path: str, target: Path) -> tuple[int, str]:
        """Stream ``path`` into ``target`` (written beside it, then renamed: never half a file under that
        name); returns (bytes, sha256 hex). On any failure the partial file is removed."""
        target = target.resolve()
        handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False)
        digest = hashlib.sha256()
        size = 0

        class _Tee:
            def write(self, chunk: bytes) -> None:
                nonlocal size
                handle.write(chunk)
                digest.update(chunk)
                size += len(chunk)

        try:
            with handle:
                self.call("GET", path, sink=_Tee())  # type: ignore[arg-type]
            os.replace(handle.name, target)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise
        return size, digest.hexdigest()
