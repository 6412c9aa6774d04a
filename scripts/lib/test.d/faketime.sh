# shellcheck shell=bash
# The chaos campaign (tests/faults/test_chaos.py, scripts/bench chaos) offsets the web's clock with libfaketime.
if [ ! -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian's faketime for the chaos campaign"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null \
      || log "could not install faketime: the web-clock fault will be skipped"
  else
    log "faketime is missing: the chaos campaign skips the web-clock fault (sudo apt-get install faketime)"
  fi
fi
