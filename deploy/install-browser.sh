#!/usr/bin/env bash
# Install what the browser tests need, only when it is missing (safe to run again):
#   - a Chromium build Playwright can drive (Debian's `chromium` package; `playwright install`
#     downloads from a CDN that offline/CI machines cannot reach),
#   - the `playwright` Python package in the project's virtualenv.
# Usage: deploy/install-browser.sh [path/to/venv]   (default: .venv next to this repo's Makefile)
# Exit 0 when both are present afterwards; 1 when something could not be installed (the UI test
# then skips with a message naming what is missing).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv}"
PY="$VENV/bin/python"
status=0

find_chromium() {
    for c in "${TALK_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
        [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
    done
    return 1
}

if chromium_bin="$(find_chromium)"; then
    echo "install-browser: chromium present: $chromium_bin"
else
    SUDO=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
    if command -v apt-get >/dev/null 2>&1; then
        echo "install-browser: installing Debian's chromium (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        if ! $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; then
            $SUDO apt-get update -q >/dev/null 2>&1 || true
            $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || true
        fi
    fi
    if chromium_bin="$(find_chromium)"; then
        echo "install-browser: chromium installed: $chromium_bin"
    else
        echo "install-browser: could not install chromium (need apt-get and root or sudo); set TALK_CHROMIUM to a Chromium binary" >&2
        status=1
    fi
fi

if [ ! -x "$PY" ]; then
    echo "install-browser: no virtualenv at $VENV (run 'make' first)" >&2
    exit 1
fi
if "$PY" -c 'import playwright' 2>/dev/null; then
    echo "install-browser: playwright present: $("$PY" -m pip show playwright 2>/dev/null | sed -n 's/^Version: //p')"
else
    echo "install-browser: installing the playwright package"
    if ! "$PY" -m pip install -q 'playwright>=1.49'; then
        echo "install-browser: pip could not install playwright" >&2
        status=1
    fi
fi
exit $status
