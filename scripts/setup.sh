#!/usr/bin/env bash
# Create/refresh the project's virtual environment in .venv (idempotent, offline-safe pins).
# Re-installs only when requirements*.txt or pyproject.toml changed since the last setup.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.vasa-setup-stamp
want=$(cat requirements.txt requirements-nodeps.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
  exit 0
fi
echo "setting up .venv (pinned requirements; about 3 minutes the first time)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
# These declare pins that would break the rest; they work without their dependencies.
.venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
.venv/bin/python -m pip install -q --no-deps -e .
echo "$want" > "$stamp"
