# Sourced by scripts/run and scripts/test: make sure .venv exists and holds the
# project and its pinned dependencies (requirements.lock), installing only when
# pyproject.toml or the lock file changed since the last install.
# LAMTRACK_EXTRAS names the optional dependency groups (default `dev`, what the
# tests need; scripts/run sets it empty: serving needs no test tools).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extras="${LAMTRACK_EXTRAS-dev}"
stamp=.venv/.lamtrack-installed
hash="$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)"
have="$(cat "$stamp" 2>/dev/null || true)"
# A venv installed for the tests also serves.
if [ "$have" != "$hash $extras" ] && ! { [ -z "$extras" ] && [ "$have" = "$hash dev" ]; }; then
  target="."
  [ -n "$extras" ] && target=".[${extras}]"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -c requirements.lock -e "$target"
  echo "$hash $extras" > "$stamp"
fi
