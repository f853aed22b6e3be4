"""Promotion governance: the dev -> staging -> production workflow on the MLflow registry."""
