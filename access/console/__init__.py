"""The access domain's console pages under ``/console/access/`` (``urls.py``): datasets, grants, requests and
reviews (``grants.py``); service accounts and their tokens (``service_accounts.py``)."""
