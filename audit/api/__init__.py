"""The ledger's REST API under ``/api/v1/``: entries, proofs, checkpoints and keys (``ledger``), runtime
event ingestion (``events``) and regulator exports (``exports``); ``urls`` routes them."""
