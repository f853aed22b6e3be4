"""The ledger's own services, one module per thing they change.

``checkpoints`` (signing the tree head), ``rotation`` (the signing key), ``retention`` (erasure
and legal holds), ``integrity`` (verification runs), ``witnessing`` (cosignatures). Entries
themselves are written by ``audit.ledger.record``; exports by ``audit.export.service``.
"""
