"""Outbound webhooks (issue #19 §2): ledger entries signed per Standard Webhooks to subscribed systems."""
