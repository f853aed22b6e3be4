"""Regulator exports of the ledger: verifiable bundles, CSV, and a model's audit report (HTML or PDF).

``service.export_create`` records who exports what as a ``ledger.exported`` entry, in the
same transaction as the ``ExportJob`` it creates, and asks for the file to be written after
commit (``audit.signals.export_requested``, queued by ``audit/tasks.py``). ``service.export_run``
(that task, or the ``export_audit`` command directly) writes the file. The bundle format and
what ``verify.py`` (``audit/offline_verify.py``) proves are in docs/export-format.md.

The scope is fixed when the export is created: the ledger then had ``ledger_size``
entries and the export covers only those (``seq < ledger_size``), whenever the
file is written. For subject exports the scope also records each subject's last
``seq`` below that size (its head), which lets a bundle show that none of the
subject's entries was left out.

Exports never contain personal data in clear: entry bodies hold commitment
objects where a payload had personal values (see docs/pii.md), and the report
shows them as redacted. Nothing here logs a payload.

Modules (no re-exports here: import from the module):

- ``errors``: ``ExportError`` and ``ExportNotPermitted``.
- ``scope``: formats, ``ExportScope``, ``parse_scope``/``parse_time``, what a scope selects.
- ``sections``: what the domains above register (``model``/``dataset`` scopes, the model report).
- ``selection``: the plan of an export and the rows it reads, in ``seq`` order.
- ``proofs``: inclusion proofs in bulk.
- ``bundle``: the verifiable zip bundle, its trust anchors and ``verify_command``.
- ``spreadsheet``: the CSV file.
- ``report``: the audit report (pack) of a model, as HTML or, through ``pdf`` (xhtml2pdf), as one PDF.
- ``pdf``: HTML to PDF, fetching nothing.
- ``service``: who may export, ``export_create`` (records ``ledger.exported``) and ``export_run``.

Bundles and the report carry the regulation mapping for their scope (``audit.compliance.scope_summary``).
"""
