"""The promotions API, one module per area (``promotions``, ``registered_models``, ``environments``,
``change_requests``, ``identity_links``) and their routes in ``urls.py`` (included by ``web/api/urls.py``);
``webhooks`` is the MLflow webhook endpoint, routed at ``/webhooks/mlflow`` by ``config/urls.py``."""
