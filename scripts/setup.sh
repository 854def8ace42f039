#!/usr/bin/env bash
# Installs the one thing cargo cannot: libtorch 2.11.0, taken from the PyPI `torch==2.11.0`
# wheel into a project-local virtual environment (.venv). Idempotent: a venv that already
# holds torch 2.11.0 is reused. `.cargo/config.toml` points tch's build at `.venv/libtorch`,
# a symlink this script makes to the wheel's `torch` package (include/ and lib/ inside).
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
PYTHON=${PYTHON:-python3}
VENV=.venv

have_torch() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$TORCH_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
sys.exit(0 if md.version("torch").split("+")[0] == sys.argv[1] else 1)
PY
}

if have_torch; then
  echo "setup: reusing $VENV (torch $TORCH_VERSION)" >&2
else
  echo "setup: installing torch==$TORCH_VERSION into $VENV (about 2.6 GB, once)" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
fi

# Where the wheel keeps libtorch, and which C++ ABI it was built with (tch must match it).
read -r torch_dir cxx11 < <("$VENV/bin/python" -W ignore - <<'PY'
import pathlib, torch
print(pathlib.Path(torch.__file__).parent, int(torch._C._GLIBCXX_USE_CXX11_ABI))
PY
)
if [ "$cxx11" != "1" ]; then
  echo "setup: torch in $VENV was built without the C++11 ABI; tch expects it (LIBTORCH_CXX11_ABI=1)" >&2
  exit 1
fi
ln -sfn "$torch_dir" "$VENV/libtorch"
echo "setup: libtorch at $VENV/libtorch -> $torch_dir" >&2
