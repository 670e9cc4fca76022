#!/usr/bin/env bash
# The Debian packages the tests need besides Python's: Chromium and its driver for the
# browser tests, curl for the README's session, venv for the virtual environment.
# Installs the missing ones with apt-get when run as root; otherwise names them and fails.
set -euo pipefail
missing=()
command -v curl >/dev/null || missing+=(curl)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "missing Debian packages: install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "installing ${missing[*]} with apt-get" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
