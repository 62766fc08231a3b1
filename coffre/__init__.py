"""Composition root: settings, the FastAPI app factory, the CLI. Nothing imports it."""
