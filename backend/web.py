"""Request-scoped helpers shared by every blueprint: settings, the database
session of the request, the signed-in principal."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, g
from flask_smorest import Blueprint as SmorestBlueprint
from sqlalchemy.orm import Session, sessionmaker
from webargs.flaskparser import FlaskParser

from backend.config import Settings


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: str  # clinician | patient

    @property
    def is_clinician(self) -> bool:
        return self.role == "clinician"


def settings() -> Settings:
    value: Settings = current_app.extensions["lamtrack.settings"]
    return value


def sessionmaker_() -> sessionmaker[Session]:
    value: sessionmaker[Session] = current_app.extensions["lamtrack.sessionmaker"]
    return value


def db() -> Session:
    """The request's unit of work; committed by the route, closed at teardown."""
    if "db_session" not in g:
        g.db_session = sessionmaker_()()
    session: Session = g.db_session
    return session


def init_app(app: Flask) -> None:
    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.rollback()
            session.close()


class StrictParser(FlaskParser):
    """Unknown query parameters are an error too (a misspelt filter must not
    silently widen a list); headers and cookies stay open."""

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": "raise", "querystring": "raise"}


class Blueprint(SmorestBlueprint):  # type: ignore[misc]
    """flask-smorest's Blueprint with the strict argument parser."""

    ARGUMENTS_PARSER = StrictParser()
