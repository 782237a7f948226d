# Sourced by scripts/run and scripts/test: make sure .venv exists and holds the
# project and its pinned dependencies (requirements.lock), installing only when
# pyproject.toml or the lock file changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.lamtrack-installed
want="$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)-${LAMTRACK_EXTRAS:-dev}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -c requirements.lock -e ".[${LAMTRACK_EXTRAS:-dev}]"
  echo "$want" > "$stamp"
fi
