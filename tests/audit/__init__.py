"""The ledger's tests: unit (the pure modules), integration (record, the sequencer, concurrency,
tampering), export, verifying, witness and witnessing, pii, keys.
"""
