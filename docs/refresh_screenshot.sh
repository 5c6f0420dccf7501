#!/usr/bin/env bash
# Refreshes docs/report.png, the README's screenshot: a real run of the suite on a correct
# drop-in beside a broken one (selftests/impls/dropins.py:SmoothingCountsIgnoredRows, the
# smoothing term counting ignored rows, pytorch#73205), its report.html rendered by headless
# Chromium. Usage, from the repository root: bash docs/refresh_screenshot.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-.venv/bin/python}"
out="$(mktemp -d)"
# The broken drop-in fails its checks, so pytest exits 1 here: that is the finding we show.
CI=true "$python" -m pytest suites/ -q -p no:cacheprovider --ls-report-dir "$out" \
  -k "value_and_gradient_in_every_dtype or ignored_targets" \
  --ls-impl examples/my_label_smoothing.py:LabelSmoothedCE \
  --ls-impl selftests/impls/dropins.py:SmoothingCountsIgnoredRows >/dev/null || true
test -s "$out/report.html"
# The shot shows the verdicts and the findings: the Run, matrix, accuracy and conventions
# sections are folded away (display: none) in a copy; nothing else of the report changes.
sed 's|</head>|<style>#run, #matrix, #accuracy, #conventions {display: none}</style></head>|' \
  "$out/report.html" > "$out/shot.html"
chromium="$(command -v chromium || command -v chromium-browser)"
"$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,900 \
  --screenshot="$out/report.png" "file://$out/shot.html" 2>/dev/null
"$python" - "$out/report.png" docs/report.png <<'PY'
import sys
from PIL import Image  # noqa: F401  (pillow comes with matplotlib)
Image.open(sys.argv[1]).convert("P", palette=Image.ADAPTIVE, colors=64).save(sys.argv[2], optimize=True)
PY
ls -l docs/report.png
