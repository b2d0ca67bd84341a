#!/usr/bin/env bash
# Install umig-monitor as a systemd service on this host: a virtualenv holding exactly uv.lock
# (versions and hashes, as CI tests it), the unit, and an example config (left alone when one
# exists). Run as root from a checkout. The directories can be moved for a staged install:
# PREFIX (the virtualenv), CONFIG_DIR, UNIT_DIR and BIN_DIR.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
prefix="${PREFIX:-/opt/umig-monitor}"
config_dir="${CONFIG_DIR:-/etc/umig-monitor}"
unit_dir="${UNIT_DIR:-/etc/systemd/system}"
bin_dir="${BIN_DIR:-/usr/local/bin}"
uv_version=0.13.9

# uv runs from a throwaway virtualenv, so nothing is installed into the system Python.
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/pip" install --quiet --disable-pip-version-check "uv==$uv_version"
UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT="$prefix" UV_NO_PROGRESS=1 \
  "$tools/venv/bin/uv" sync --project "$here" --frozen --no-dev --no-editable --extra postgres --quiet
install -d "$bin_dir"
ln -sf "$prefix/bin/umig-monitor" "$bin_dir/umig-monitor"

install -d -m 0750 "$config_dir"
if [ ! -e "$config_dir/umig-monitor.yaml" ]; then
  install -m 0640 "$here/config/umig-monitor.example.yaml" "$config_dir/umig-monitor.yaml"
  echo "edit $config_dir/umig-monitor.yaml, then: systemctl enable --now umig-monitor"
fi
install -d "$unit_dir"
install -m 0644 "$here/deploy/systemd/umig-monitor.service" "$unit_dir/umig-monitor.service"
# Only on a host that runs systemd (not in a build container or chroot).
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
"$prefix/bin/umig-monitor" check-config --config "$config_dir/umig-monitor.yaml" || true
