# Sourced by scripts/dev and scripts/test: make sure .venv exists and holds the project.
# The pip extras to install come from CONVEYOR_EXTRAS (set by the sourcing script), never from
# its arguments: those belong to the command it runs (starter.py dev, pytest).
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Conveyor needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$PYTHON" --version)…"
  "$PYTHON" -m venv .venv
fi
extras=${CONVEYOR_EXTRAS:-}
stamp=".venv/.installed${extras:+-$extras}"
want=$(cat pyproject.toml | "$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
installed() {
  # Up to date when this install matches, or (for the plain one) an install with extras does.
  local candidate candidates=("$stamp")
  [ -n "$extras" ] || candidates+=(.venv/.installed-*)
  for candidate in "${candidates[@]}"; do
    if [ -f "$candidate" ] && [ "$(cat "$candidate")" = "$want" ]; then return 0; fi
  done
  return 1
}
if ! installed; then
  echo "installing Conveyor${extras:+ with [$extras]} into .venv…"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
  echo "$want" > "$stamp"
fi
