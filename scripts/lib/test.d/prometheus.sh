# shellcheck shell=bash
# tests/test_alert_rules.py runs `promtool check rules` and `promtool test rules` on
# deploy/prometheus/rules.yml: Debian's prometheus package provides promtool.
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian's prometheus (for promtool, to test the alert rules)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
      || die "could not install prometheus (apt-get install prometheus)"
  else
    log "promtool is missing: the alert-rule tests will skip (sudo apt-get install prometheus)"
  fi
fi
