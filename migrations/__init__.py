"""Alembic migrations, installed as the package `backend._migrations`."""
