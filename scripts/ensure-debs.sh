#!/usr/bin/env bash
# Install the Debian packages the integration tests and the demo run for real:
# Prometheus (+ promtool), Alertmanager (+ amtool), Redis, the Pushgateway and
# VictoriaMetrics (+ vmalert, vmagent) (and, from the Makefile, chromium for the
# HTML report test).
# Installs only what is missing; needs root (or sudo) the first time.
# Extra arguments name more commands, each from the Debian package of that
# name (e.g. `ensure-debs.sh wrk` for the benchmarks).
set -euo pipefail

declare -A wanted=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
  [redis-server]=redis-server
  [prometheus-pushgateway]=prometheus-pushgateway
  [victoria-metrics]=victoria-metrics
  [vmalert]=victoria-metrics
  [vmagent]=victoria-metrics
)
for extra in "$@"; do wanted[$extra]=$extra; done
missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "ensure-debs: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "ensure-debs: need root to apt-get install ${missing[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
# The packages start system services where an init system runs; the tests and
# the demo start their own instances on random loopback ports instead.
for svc in prometheus prometheus-alertmanager redis-server prometheus-pushgateway \
           victoria-metrics; do
  $sudo service "$svc" stop >/dev/null 2>&1 || true
done
