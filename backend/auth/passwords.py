"""Password hashing with argon2id (argon2-cffi), and the rule for new passwords.

Parameters meet OWASP's minimum for argon2id (19 MiB memory, 2 iterations,
parallelism 1; OWASP Password Storage Cheat Sheet). Hashes made with weaker
parameters are upgraded at the next successful login.

A new password (registration by invite, `lamtrack create-clinician`) follows
NIST SP 800-63B section 5.1.1.2 (memorized secrets): a minimum length and no
composition rules, but it is compared with a list of commonly used, expected or
compromised values, repetitive or sequential characters and context-specific
words (the service's name, the account's email), and refused when it matches.
The list is the 30,000 most frequent passwords of a public breach corpus that
the zxcvbn library ships (`zxcvbn.frequency_lists`, MIT licence, from Mark
Burnett's 10 million passwords); zxcvbn's own guess estimate (with the context
words as user inputs) then refuses what is guessable in under 10^8 tries
(its score below 3) by other patterns: dates, keyboard walks, words with digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

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


MAX_PASSWORD_LENGTH = 1024
SERVICE_WORDS = ("lamtrack",)
# zxcvbn refuses longer input; its patterns are all found well within this.
_ESTIMATE_CHARS = 72
# zxcvbn's score 3: "safely unguessable", at least 10^8 guesses.
MIN_ZXCVBN_SCORE = 3
MIN_DISTINCT_CHARACTERS = 5
_AFFIXES = re.compile(r"^[\W\d_]+|[\W\d_]+$")
_WORDS = re.compile(r"[a-z0-9]+")

RULE_MESSAGES = {
    "length": f"Use at least {MIN_PASSWORD_LENGTH} characters.",
    "common": "It is on a list of commonly used or breached passwords.",
    "repetitive": "It repeats the same characters.",
    "sequential": "It is mostly a sequence of characters (such as abcd or 1234).",
    "context": "It is mostly made of the service's name or the account's email.",
    "guessable": "It is too easy to guess; a few unrelated words make a strong password.",
}


@dataclass(frozen=True, slots=True)
class PasswordRefusal:
    rule: str  # a key of RULE_MESSAGES

    @property
    def message(self) -> str:
        return RULE_MESSAGES[self.rule]


@cache
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def context_words(email: str | None) -> list[str]:
    """The words a password must not be made of: the service's name and the
    parts of the email (its local part, its domain without the last label)."""
    words = list(SERVICE_WORDS)
    if email:
        local, _, domain = email.strip().lower().partition("@")
        words.append(local)
        words += _WORDS.findall(local)
        labels = domain.split(".")
        words += [label for label in labels[:-1] if label]
        words.append(email.strip().lower())
    return sorted({w for w in words if len(w) >= 3}, key=len, reverse=True)


def _is_common(lowered: str) -> bool:
    common = _common()
    if lowered in common or lowered.replace(" ", "") in common:
        return True
    # The same with digits and punctuation added before or after ("Password2024!").
    core = _AFFIXES.sub("", lowered)
    return len(core) >= 4 and core in common


def _is_repetitive(lowered: str) -> bool:
    return len(set(lowered)) < MIN_DISTINCT_CHARACTERS or re.fullmatch(r"(.+?)\1+", lowered) is not None


def _is_sequential(lowered: str) -> bool:
    """Three quarters or more of the characters lie in runs of three or more
    steps of one code point up or down (abcd, 4321, 1234abcd)."""
    text = re.sub(r"[\s\-_.]", "", lowered)
    covered = [False] * len(text)
    start = 0
    while start < len(text) - 2:
        step = ord(text[start + 1]) - ord(text[start])
        end = start + 1
        if step in (1, -1):
            while end + 1 < len(text) and ord(text[end + 1]) - ord(text[end]) == step:
                end += 1
        if end - start >= 2:
            covered[start : end + 1] = [True] * (end - start + 1)
            start = end + 1
        else:
            start += 1
    return bool(text) and sum(covered) * 4 >= len(text) * 3


def _is_context(lowered: str, words: Iterable[str]) -> bool:
    rest = lowered
    for word in words:
        rest = rest.replace(word, "")
    return rest != lowered and len(rest) < MIN_PASSWORD_LENGTH


def _estimate_rule(password: str, words: list[str]) -> str | None:
    from zxcvbn import zxcvbn

    result = zxcvbn(password[:_ESTIMATE_CHARS], user_inputs=words, max_length=_ESTIMATE_CHARS)
    if result["score"] >= MIN_ZXCVBN_SCORE:
        return None
    found = {(m["pattern"], m.get("dictionary_name")) for m in result["sequence"]}
    if ("dictionary", "user_inputs") in found:
        return "context"
    if any(pattern == "repeat" for pattern, _ in found):
        return "repetitive"
    if any(pattern == "sequence" for pattern, _ in found):
        return "sequential"
    if ("dictionary", "passwords") in found:
        return "common"
    return "guessable"


def password_refusal(password: str, *, email: str | None = None) -> PasswordRefusal | None:
    """Why `password` may not be set for the account `email`, or None when it may."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return PasswordRefusal("length")
    lowered = password.lower()
    words = context_words(email)
    for rule, refused in (
        ("common", _is_common(lowered)),
        ("repetitive", _is_repetitive(lowered)),
        ("sequential", _is_sequential(lowered)),
        ("context", _is_context(lowered, words)),
    ):
        if refused:
            return PasswordRefusal(rule)
    estimated = _estimate_rule(password, words)
    return PasswordRefusal(estimated) if estimated else None
