"""Domain signals of the promotion-governance domain: what its services announce for delivery code to act on.

Services never import ``governance.tasks`` (delivery). A service that needs MLflow changed after its
transaction commits sends one of these inside that transaction; ``governance.tasks`` connects a
receiver to each that queues the task with ``transaction.on_commit`` (so nothing is queued for a
change that rolls back). ``governance.apps`` imports ``governance.tasks`` in ``ready()``, so the
receivers are connected in the web process, the worker and the tests alike.

Each is sent with ``sender`` the service module's name and the keyword arguments listed.
"""
from __future__ import annotations

from django.dispatch import Signal

#: A promotion request became approved (``promotion_id``): its version is to be deployed. With ``promotion``
#: (the request, locked, not None) the sender saves it afterwards with ``follow_ups.FOLLOW_UP_FIELDS``: a
#: receiver marks its follow-up on it in memory instead of writing the mark itself.
promotion_approved = Signal()
#: A canary/shadow rollout was reported completed (``promotion_id``): the environment's alias is to move.
rollout_completed = Signal()
#: A canary/shadow rollout was reported failed (``promotion_id``): its candidate alias is to go.
rollout_failed = Signal()
#: A deployed promotion was rolled back (``promotion_id``): the environment's alias is to follow.
promotion_rolled_back = Signal()
#: An MLflow webhook delivery naming a registered model was stored (``delivery_id``, the ``WebhookDelivery`` row's
#: id, and ``model``): its follow-up (a sync of the model) is to be queued; the row is its outbox.
webhook_delivery_accepted = Signal()
#: The first refused webhook delivery of a new interval was counted: closed intervals are to be summarised.
webhook_refusal_interval_opened = Signal()
