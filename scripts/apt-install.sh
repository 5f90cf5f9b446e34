#!/usr/bin/env bash
# apt-install.sh PACKAGE WHAT installs Debian's (or Ubuntu's) PACKAGE, which
# provides WHAT (words for the messages, such as "promtool"): as root
# directly, otherwise through sudo, saying what it runs; where it cannot,
# it prints the one command to run and fails. The ensure-*.sh scripts call
# it once they found WHAT missing.
set -euo pipefail

pkg=$1
what=$2
install="apt-get update -q && apt-get install -y -q --no-install-recommends $pkg"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$what: not installed, and this is not Debian or Ubuntu: install it with your system's package manager." >&2
  exit 1
fi
echo "$what: not installed."
if [ "$(id -u)" = 0 ]; then
  echo "installing it, as root: $install"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg"
elif command -v sudo >/dev/null 2>&1; then
  echo "installing it through sudo (it may ask for your password): sudo sh -c '$install'"
  if ! sudo env DEBIAN_FRONTEND=noninteractive sh -c "$install"; then
    echo "sudo could not install it. Run, as root, then run make again:" >&2
    echo >&2
    echo "    $install" >&2
    exit 1
  fi
else
  echo "There is no sudo here. Run, as root, then run make again:" >&2
  echo >&2
  echo "    su -c '$install'" >&2
  exit 1
fi
