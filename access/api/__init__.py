"""The access domain's ``/api/v1/`` endpoints: datasets and lineage, grants, access requests, reviews, the
access check, service accounts and their tokens (``urls.py``; shared references and paging in ``common.py``)."""
