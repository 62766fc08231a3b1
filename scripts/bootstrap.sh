#!/usr/bin/env bash
# Installs what Coffre needs on a Debian/Ubuntu machine, idempotently and quickly when it is
# already there: system packages (only those missing), a virtualenv in .venv, the project.
#   scripts/bootstrap.sh          runtime only
#   scripts/bootstrap.sh --test   also what the test suite needs
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

# System packages, by purpose.
# OCR and PDF/A: tesseract with French and English, ghostscript, qpdf, poppler (pdftoppm).
SYSTEM_PACKAGES=(openssl ca-certificates python3 python3-venv python3-pip
  tesseract-ocr tesseract-ocr-fra tesseract-ocr-eng ghostscript qpdf poppler-utils)
# Tests: a PKCS#11 token, the fonts the synthetic scans are drawn with (DejaVu Condensed
# is in -extra, Liberation Sans Narrow only in fonts-liberation 1.x), Debian's Chromium for
# the web pages (driven by Playwright with executable_path=/usr/bin/chromium; never `playwright install`).
TEST_SYSTEM_PACKAGES=(softhsm2 chromium
  fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-liberation2 fonts-freefont-ttf)

wanted=("${SYSTEM_PACKAGES[@]}")
[ $want_test -eq 1 ] && wanted+=("${TEST_SYSTEM_PACKAGES[@]}")
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing system packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# A Python >= 3.11: the first of these that qualifies.
PYTHON=""
for candidate in "${COFFRE_PYTHON:-}" python3.13 python3.12 python3.11 python3; do
  [ -n "$candidate" ] || continue
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PYTHON="$candidate"; break
  fi
done
[ -n "$PYTHON" ] || { echo "bootstrap: Python >= 3.11 is required" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi

extras=""
[ $want_test -eq 1 ] && extras="[test]"
stamp=".venv/.coffre-installed${extras}"
fingerprint=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$fingerprint" ]; then
  echo "bootstrap: installing Coffre${extras} into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${extras}"
  echo "$fingerprint" > "$stamp"
fi
