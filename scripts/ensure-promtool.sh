#!/usr/bin/env bash
# ensure-promtool.sh makes sure promtool, which the deploy check (go test
# ./deploy/) runs on the Prometheus configuration, the alert rules and
# their unit tests, is installed. When it is missing it installs Debian's
# (or Ubuntu's) prometheus package, which ships it: as root directly,
# otherwise through sudo; where it cannot, it prints the command to run and
# fails. Without promtool the deploy check skips those tests, except under
# CI (CI set), where it fails.
set -euo pipefail

command -v promtool >/dev/null 2>&1 && exit 0

install="apt-get update -q && apt-get install -y -q --no-install-recommends prometheus"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "promtool is not installed, and this is not Debian or Ubuntu: install Prometheus's promtool and put it on PATH." >&2
  exit 1
fi
echo "promtool is not installed."
if [ "$(id -u)" = 0 ]; then
  echo "installing it, as root: $install"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
elif command -v sudo >/dev/null 2>&1; then
  echo "installing it through sudo (it may ask for your password): sudo sh -c '$install'"
  if ! sudo env DEBIAN_FRONTEND=noninteractive sh -c "$install"; then
    echo "sudo could not install it. Run, as root, then run make again:" >&2
    echo "    $install" >&2
    exit 1
  fi
else
  echo "There is no sudo here. Run, as root, then run make again:" >&2
  echo "    su -c '$install'" >&2
  exit 1
fi
command -v promtool >/dev/null 2>&1 || { echo "the prometheus package is installed but promtool is not on PATH" >&2; exit 1; }
