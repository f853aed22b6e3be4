"""Services of the promotion-governance domain: every state change is one of these functions.

Each is keyword-only and ``@transaction.atomic``, takes the acting person as ``actor`` and the thing it
acts on by its own name, and writes its ledger entry in the same transaction. MLflow is changed only
after commit, by Celery tasks (``governance.tasks``), which the services reach through
``governance.signals``; they never talk to MLflow inside a transaction.

Modules (one per thing changed; nothing is re-exported here):

- ``promotions``: promotion requests, from asking to deciding (request, approve, reject, request changes,
  withdraw, expire, re-evaluate);
- ``deployments``: deploying an approved promotion, rollout progress, failure and rollback;
- ``break_glass``: emergency promotions, their budget and post-hoc reviews;
- ``evidence``: the policy's gates run against a version (a request's evidence);
- ``environments``: an environment's fields, protection, promotion policies and freeze windows;
- ``change_requests``: two-person control over the rules of protected environments;
- ``compliance``: compliance violations, recorded and acknowledged;
- ``registered_models``: model ownership and its drift from MLflow's ``owner`` tag;
- ``model_versions``: a version's declared data classification and its trusted registrant;
- ``identity_links``: MLflow identities vouched for as accounts;
- ``registry_mirror``: MLflow's registered models, versions and aliases mirrored and reconciled;
- ``webhooks``: MLflow webhook deliveries accepted, refusals counted and summarised;
- ``common``: what the modules share (subjects, payloads, text checks).
"""
