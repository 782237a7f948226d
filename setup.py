"""Packaging beyond what pyproject.toml can say: the `backend` tree, plus the
top-level `migrations/` folder shipped inside it as `backend._migrations`
(package data: alembic.ini, env.py, script.py.mako, versions/*.py), which
`backend.db_admin` finds with importlib.resources, installed or editable."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["backend", "backend.*"]), "backend._migrations"],
    package_dir={"backend._migrations": "migrations"},
)
