#!/usr/bin/env bash
# Install umig-monitor as a systemd service on this host: a virtualenv under /opt, the unit, and an
# example config in /etc/umig-monitor (left alone when one exists). Run as root from a checkout.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
prefix="${PREFIX:-/opt/umig-monitor}"

python3 -m venv "$prefix"
"$prefix/bin/pip" install --quiet --upgrade pip
"$prefix/bin/pip" install --quiet "$here"
ln -sf "$prefix/bin/umig-monitor" /usr/local/bin/umig-monitor

install -d -m 0750 /etc/umig-monitor
if [ ! -e /etc/umig-monitor/umig-monitor.yaml ]; then
  install -m 0640 "$here/config/umig-monitor.example.yaml" /etc/umig-monitor/umig-monitor.yaml
  echo "edit /etc/umig-monitor/umig-monitor.yaml, then: systemctl enable --now umig-monitor"
fi
install -m 0644 "$here/deploy/systemd/umig-monitor.service" /etc/systemd/system/umig-monitor.service
systemctl daemon-reload
umig-monitor check-config --config /etc/umig-monitor/umig-monitor.yaml || true
