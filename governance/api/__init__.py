"""The promotions API: promotions, models, environments, change requests, identity links."""
