"""The public API (FastAPI): the only door for providers, restaurants, drivers and browsers."""
