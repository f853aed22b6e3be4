"""The exit statuses of ``govern`` (stable: pipelines branch on them; the table is in docs/cli.md).

The verifying commands (``export verify``, ``receipt verify``) use verify.py's own statuses instead
(0 verified, 1 a check failed, 2 unreadable, 3 not anchored), so a script that ran verify.py keeps working.
"""
from __future__ import annotations

OK = 0
#: An integrity check failed (a download's SHA-256, a verification).
INTEGRITY = 1
#: Bad usage: arguments, configuration, an unreadable or malformed input file, or a request the
#: server refused as malformed (400, 413, 415, 422). Nothing was changed.
USAGE = 2
#: Not authenticated (401: the token is missing, unknown, expired or revoked) or not permitted (403,
#: including a token without the scope the command needs).
AUTH = 3
#: Not found, or not visible to the token (404: the API answers both the same).
NOT_FOUND = 4
#: The server could not be reached or failed (network, TLS, 5xx, a redirect, a non-API answer),
#: after retrying what is safe to retry. Running the command again is safe.
UNAVAILABLE = 5
#: The request conflicts with the current state (409: already decided, not a rollout in progress...).
CONFLICT = 6
#: Some runtime events were refused by the server (the others were recorded; counts on stderr).
EVENTS_REFUSED = 7
#: The promotion was rejected.
REJECTED = 10
#: The promotion ended without a decision to deploy: changes requested, withdrawn or expired.
ENDED = 11
#: The deployment failed or was rolled back; or the export job failed.
FAILED = 12
#: Waited until --timeout and the promotion (or export, or receipt) is still not there.
TIMEOUT = 20

# verify.py's statuses (audit.offline_verify), for the verifying commands.
VERIFIED = 0
VERIFY_FAILED = 1
VERIFY_UNREADABLE = 2
VERIFY_UNANCHORED = 3

TABLE: tuple[tuple[int, str, str], ...] = (
    (OK, "OK", "done as asked (promote --wait: deployed, or for canary/shadow the rollout started)"),
    (INTEGRITY, "INTEGRITY", "an integrity check failed (a download's SHA-256 differs from the server's)"),
    (USAGE, "USAGE", "bad arguments, configuration or input file, or a request the server refused as malformed"),
    (AUTH, "AUTH", "401/403: token missing, invalid, expired, revoked, lacking the scope, or not permitted"),
    (NOT_FOUND, "NOT_FOUND", "404: no such thing, or the token may not see it"),
    (UNAVAILABLE, "UNAVAILABLE", "network, TLS, 5xx, redirect or non-API answer (after retries); safe to rerun"),
    (CONFLICT, "CONFLICT", "409: the current state does not allow it"),
    (EVENTS_REFUSED, "EVENTS_REFUSED", "events post: some batches refused (the rest recorded)"),
    (REJECTED, "REJECTED", "the promotion was rejected"),
    (ENDED, "ENDED", "changes requested, withdrawn or expired"),
    (FAILED, "FAILED", "the deployment failed or was rolled back; the export job failed"),
    (TIMEOUT, "TIMEOUT", "--timeout passed and it is still pending"),
)
