"""The OpenAPI document, generated from the routes and schemas."""

from __future__ import annotations

import yaml

from backend.config import Settings


def render_openapi() -> str:
    from backend import create_app

    # The document does not depend on the database; an in-memory one avoids touching files.
    app = create_app(Settings(database_url="sqlite://", jwt_keys={"doc": "x" * 32}))
    with app.app_context():
        document = app.extensions["flask-smorest"]["apis"][""]["spec"].to_dict()
    return yaml.safe_dump(document, sort_keys=True, allow_unicode=True, width=100)
