"""The ledger's pages in the console: the explorer and entry page (``ledger``), exports and their
download (``exports``), legal holds (``legal_holds``); ``urls`` routes them under ``/console/``,
``download_urls`` the export download at the site root."""
