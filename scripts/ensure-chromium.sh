#!/usr/bin/env bash
# ensure-chromium.sh makes sure a headless-capable Chromium is installed
# for the status page's browser test (go test ./router/ -run
# TestStatusPageBrowser, which drives it with chromedp). When it is missing
# it installs Debian's chromium package (apt-install.sh: as root directly,
# otherwise through sudo; where it cannot, it prints the one command to run
# and fails). Without chromium the browser test skips, saying why, except
# under CI (CI set) or with DMS_REQUIRE_CHROMIUM=1, where it fails.
set -euo pipefail

for b in chromium chromium-browser; do
  command -v "$b" >/dev/null 2>&1 && exit 0
done
"$(dirname "$0")/apt-install.sh" chromium "chromium (the browser the status page's test drives)"
if ! command -v chromium >/dev/null 2>&1; then
  echo "the chromium package is installed but chromium is not on PATH" >&2
  exit 1
fi
