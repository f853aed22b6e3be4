"""The ledger event types of outbound webhooks (registered from ``IntegrationsConfig.ready()``).

No entry ever holds a subscription's secret, nor its full target URL (a URL may carry a token in its path or
query): ``target`` is the scheme, host and port, ``url_sha256`` tells a changed URL apart.
"""
from __future__ import annotations

from audit.event_types import EventType, Field, registry

_r = registry.register
S = Field
OPT = Field(required=False)
_ID = {"subscription_id": Field("int")}
_SUBSCRIPTION = "webhook_subscription"
_FILTERS = {"name": S(), "target": S(), "url_sha256": S(), "event_types": Field("list"),
            "subject_type": OPT, "subject_id": OPT}

_r(EventType("webhook.subscription_created", "InfoSec subscribed a system to ledger entries (a signed webhook).",
             {**_ID, **_FILTERS, "from_seq": Field("int")}, subject=_SUBSCRIPTION))
_r(EventType("webhook.subscription_updated", "A webhook subscription's target or filters changed.",
             {**_ID, **_FILTERS, "reason": OPT}, subject=_SUBSCRIPTION))
_r(EventType("webhook.subscription_paused", "A webhook subscription was paused (nothing is sent; nothing is skipped).",
             {**_ID, "reason": OPT}, subject=_SUBSCRIPTION))
_r(EventType("webhook.subscription_resumed", "A paused or failing webhook subscription was resumed.",
             {**_ID, "reason": OPT}, subject=_SUBSCRIPTION))
_r(EventType("webhook.subscription_deleted", "A webhook subscription was deleted.",
             {**_ID, "reason": OPT}, subject=_SUBSCRIPTION))
_r(EventType("webhook.secret_rotated", "A webhook subscription's signing secret was replaced.",
             {**_ID, "reason": OPT}, subject=_SUBSCRIPTION))
_r(EventType("webhook.replay_requested", "InfoSec asked a webhook subscription to deliver again from a seq.",
             {**_ID, "from_seq": Field("int"), "reason": S()}, subject=_SUBSCRIPTION))
_r(EventType("webhook.subscription_failing", "Deliveries kept failing past the retry window: the subscription "
             "was paused as failing.",
             {**_ID, "failing_since": S(), "failures": Field("int"), "seq": Field("int"), "last_error": S()},
             subject=_SUBSCRIPTION))
