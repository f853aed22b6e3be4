"""The console pages of promotion governance, one module per area (``overview``, ``promotions``,
``environments``, ``identity_links``) and their routes in ``urls.py`` (included by ``web/console/urls.py``)."""
