# shellcheck shell=bash
# The browser tests drive Debian's Chromium (Playwright's own browser download can't work offline).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian's chromium for the browser tests"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
      || die "could not install chromium (apt-get install chromium)"
  else
    log "chromium is missing: the browser tests will fail (sudo apt-get install chromium)"
  fi
fi
