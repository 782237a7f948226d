"""Password hashing with argon2id (argon2-cffi).

Parameters meet OWASP's minimum for argon2id (19 MiB memory, 2 iterations,
parallelism 1; OWASP Password Storage Cheat Sheet). Hashes made with weaker
parameters are upgraded at the next successful login.
"""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)

# Verified against when the account does not exist, so that a login for an
# unknown email costs the same time as one for a known email.
_DUMMY_HASH = _HASHER.hash("not-a-real-password")

MIN_PASSWORD_LENGTH = 12


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _HASHER.check_needs_rehash(stored_hash)
