# Shared by scripts/run and scripts/test: the venv and a Redis that answers.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

find_python() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      command -v "$candidate"; return 0
    fi
  done
  die "Python 3.11 is required (python3.11 not found)."
}

# venv_current REQUIREMENTS_FILE: that lock is installed in .venv as it is now.
venv_current() {
  local stamp="$VENV/.installed-$(basename "$1")"
  [ -x "$PY" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(lock_digest "$1")" ]
}

lock_digest() { cat "$ROOT/requirements.txt" "$ROOT/$1" | sha256sum | cut -d' ' -f1; }

# ensure_venv REQUIREMENTS_FILE: create .venv and install a hash-checked lock, again only when it changes.
ensure_venv() {
  local requirements="$1"
  # The dev lock pins the runtime lock's versions (-c requirements.txt): a current dev install covers it.
  if [ "$requirements" = requirements.txt ] && venv_current requirements-dev.txt; then return 0; fi
  if [ ! -x "$PY" ]; then
    log "creating virtualenv in .venv"
    "$(find_python)" -m venv "$VENV"
    "$PY" -m pip install --quiet --upgrade pip
  fi
  if ! venv_current "$requirements"; then
    log "installing $requirements"
    # The lock (scripts/lock): every package pinned, each file's hash checked.
    "$PY" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$ROOT/$requirements"
    lock_digest "$requirements" > "$VENV/.installed-$(basename "$requirements")"
  fi
}

redis_answers() {
  "$PY" - "$1" <<'PYEOF' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
PYEOF
}

# ensure_redis URL: start a local redis-server when none answers on a loopback URL.
ensure_redis() {
  local url="$1"
  if redis_answers "$url"; then return 0; fi
  case "$url" in
    redis://127.0.0.1:6379*|redis://localhost:6379*) ;;
    *) die "Redis does not answer at $url." ;;
  esac
  if ! command -v redis-server >/dev/null 2>&1; then
    die "No Redis answers at $url and redis-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) or point REDIS_URL at a running Redis."
  fi
  log "starting a local redis-server on 127.0.0.1:6379"
  mkdir -p "$ROOT/var/redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --dir "$ROOT/var/redis" \
    --appendonly yes --logfile "$ROOT/var/redis/redis.log" >/dev/null
  for _ in $(seq 1 50); do redis_answers "$url" && return 0; sleep 0.1; done
  die "redis-server did not start; see var/redis/redis.log"
}
