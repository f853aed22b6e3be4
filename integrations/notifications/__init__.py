"""Notifications to people (issue #19 §1): e-mail and Slack-compatible chat, per-person preferences, digests.

``rules``: who hears of which ledger entry, and what is said; ``services``: the queue in and out;
``channels``: e-mail and chat. docs/notifications.md.
"""
