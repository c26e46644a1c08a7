#!/usr/bin/env bash
# Makes sure Debian's chromium is installed, for the dashboard's browser test
# (cmd/internal/demo, TestDashboardInChromium), and prints its path.
#
#   deploy/chromium.sh           install it if missing (root, or sudo without a password)
#   deploy/chromium.sh --check   only print the path; exit 1 if missing
#
# The test runs it when chromium is missing and CI=true; without CI it skips
# and says to run this.
set -euo pipefail

find_chromium() {
  for c in "${CHROMIUM:-}" chromium chromium-browser google-chrome-stable google-chrome; do
    [ -n "$c" ] || continue
    if p=$(command -v "$c" 2>/dev/null); then
      echo "$p"
      return 0
    fi
  done
  return 1
}

if find_chromium; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "chromium: not installed (deploy/chromium.sh installs it)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "chromium: not installed and no apt-get here: install Chromium and set CHROMIUM to its path" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "chromium: not installed; installing it needs root or password-less sudo: apt-get install chromium" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
apt_get() { "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 "$@"; }
echo "chromium: installing Debian's chromium (apt-get)" >&2
apt_get update -qq >&2
# With its recommended packages, as the machines' probe installed and ran it;
# fonts-liberation (the page's font) named in case recommends are turned off.
apt_get install -y -qq chromium fonts-liberation >&2
find_chromium
