"""The clinical core: pure functions over plain data.

Nothing here imports Flask or SQLAlchemy. Services load rows, turn them into the
dataclasses defined here and call these functions; the results are plain data too.
"""
