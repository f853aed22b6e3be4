"""``govern``: the command-line client of the governance ledger's REST API, for pipelines (docs/cli.md).

It runs on CI machines and serving hosts, talks to the server only over HTTP(S) with an API token
from the environment, and imports nothing of the server: no Django, no DRF, no settings
(import contract ``govern-is-a-client``; tests/test_architecture.py). The only project modules it
loads are the standalone ones that already ship alone (``audit.offline_verify``, the verifier copied
into every export bundle as ``verify.py``, and ``governance.directory_digest``, the pure artifact
digest), so an export or a model directory is checked here exactly as the server and an auditor do.
"""
