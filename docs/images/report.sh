#!/bin/sh
# Regenerates docs/images/report.png (the README's picture of the HTML report) from the
# trace `make demo` leaves in demo-run/traces. Needs Debian's chromium.
set -eu
cd "$(dirname "$0")/../.."
[ -n "$(ls demo-run/traces/*.jsonl 2>/dev/null)" ] || make demo
.venv/bin/epochwatch report demo-run/traces --format html -o demo-run/report.html
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --hide-scrollbars \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --window-size=1200,1750 \
    --screenshot=docs/images/report.png "file://$PWD/demo-run/report.html" 2>/dev/null
ls -l docs/images/report.png demo-run/report.html
