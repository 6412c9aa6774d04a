#!/bin/sh
# Prometheus reads the scrape token from a file; compose gives it METRICS_TOKEN (deploy/env/prometheus.env).
set -eu
umask 077
printf '%s' "$METRICS_TOKEN" > /prometheus/metrics_token
exec /bin/prometheus --config.file=/etc/prometheus/prometheus.yml --storage.tsdb.path=/prometheus \
  --storage.tsdb.retention.time=15d --web.listen-address=:9090
