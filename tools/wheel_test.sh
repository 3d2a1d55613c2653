#!/usr/bin/env bash
# The package on its own, as a reader outside the repository gets it: build the wheel, make a
# fresh virtual environment in a temporary folder, and run chapter notebooks as the site ships
# them (set-up cell first) from that folder under nbval. The set-up cell installs the wheel
# (LLMS_WHEEL points it at the local build instead of the published copy) with its exact pins
# and fetches the course data into the folder's data/ with `python -m llmscratch.fetch`'s code.
#   tools/wheel_test.sh [lessons/02-attention.md ...]     (default: chapters 2 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PYTHON=${PYTHON:-python3.11}
CHAPTERS=("$@")
[ ${#CHAPTERS[@]} -gt 0 ] || CHAPTERS=(lessons/02-attention.md lessons/03-gpt-model.md)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/llmscratch-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SECONDS=0
$PY tools/publish.py wheel "$WORK/dist"
WHEEL=$(ls "$WORK"/dist/llmscratch-*.whl)
$PYTHON -m venv "$WORK/venv"
# only what runs the test: the course package itself comes from the set-up cell
pins=$(grep -E '^(nbval|pytest|ipykernel)==' requirements.txt)
# shellcheck disable=SC2086  # one word per pin
"$WORK/venv/bin/python" -m pip install --quiet $pins
$PY tools/to_ipynb.py --setup "$WORK/run" "${CHAPTERS[@]}"
echo "wheel and test environment ready in ${SECONDS} s"
cd "$WORK/run"   # outside the clone: no lessons/, no data/
LLMS_WHEEL="$WHEEL" "$WORK/venv/bin/python" -m pytest -p no:cacheprovider --nbval-lax \
  --nbval-current-env --nbval-cell-timeout=900 -q .
# the package the notebooks used was the installed wheel (not a clone), and the data is here
"$WORK/venv/bin/python" -c 'import sys, llmscratch.course as c; sys.exit(c.IN_CHECKOUT)' \
  && test -d data/tiktoken-cache && test -d data/shakespeare \
  || { echo "the notebooks did not run outside a clone with their own data/" >&2; exit 1; }
echo "wheel test passed in ${SECONDS} s"
