#!/usr/bin/env bash
# Chromium for the browser tests (test/browser), from Debian's packages: playwright-core drives it, and
# no browser is downloaded from anywhere else. Installs the `chromium` package when it is missing (root:
# apt-get; CI runs as root) and prints the browser's path on stdout, for PHISERVE_CHROMIUM.
#
#   PHISERVE_CHROMIUM="$(bash scripts/chromium.sh)"       # .ci/run
#
# Progress on stderr. Fails when the browser cannot be installed (CI must run the browser tests).
set -euo pipefail

find_chromium() {
  for candidate in "${PHISERVE_CHROMIUM:-}" /usr/lib/chromium/chromium /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then printf '%s\n' "$candidate"; return 0; fi
  done
  return 1
}

if path="$(find_chromium)"; then printf '%s\n' "$path"; exit 0; fi
if [ "$(id -u)" != 0 ]; then echo "chromium.sh: chromium is not installed and this is not root (apt-get install -y chromium)" >&2; exit 1; fi
echo "chromium.sh: apt-get install chromium (Debian's package)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# Fonts: without any, pages render boxes and screenshots are useless.
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
path="$(find_chromium)" || { echo "chromium.sh: chromium installed but not found" >&2; exit 1; }
echo "chromium.sh: $("$path" --version 2>/dev/null || echo "$path")" >&2
printf '%s\n' "$path"
