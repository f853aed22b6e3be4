"""Operational models of the ledger (scheduled verification runs, legal holds). Imported by audit.models."""
from __future__ import annotations
