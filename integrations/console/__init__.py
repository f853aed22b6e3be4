"""The integrations' console pages (each part its own module)."""
