# shellcheck shell=bash
# tests/test_compose.py validates docker-compose.yml with `docker compose config` (Docker's plugin)
# or, where that plugin isn't packaged, Debian's docker-compose: no engine is needed for either.
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    log "installing docker-compose (to validate docker-compose.yml)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null \
      || die "could not install docker-compose"
  fi
fi
