#!/usr/bin/env bash
# ensure-promtool.sh makes sure promtool, which the deploy check (go test
# ./deploy/) runs on the Prometheus configuration, the alert rules and
# their unit tests, is installed. When it is missing it installs Debian's
# (or Ubuntu's) prometheus package, which ships it (apt-install.sh: as root
# directly, otherwise through sudo; where it cannot, it prints the one
# command to run and fails). Without promtool the deploy check skips those
# tests, except under CI (CI set), where it fails.
set -euo pipefail

command -v promtool >/dev/null 2>&1 && exit 0
"$(dirname "$0")/apt-install.sh" prometheus "promtool (Prometheus's rule and config checker)"
if ! command -v promtool >/dev/null 2>&1; then
  echo "the prometheus package is installed but promtool is not on PATH" >&2
  exit 1
fi
