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

# The Python package (python/): maturin and the test dependencies from PyPI, then the wheel built
# against this venv's torch (LIBTORCH_USE_PYTORCH: tch links the wheel's own libtorch) and
# installed. Cargo rebuilds only what changed, so a rerun costs seconds; skip it with
# MTROBUST_SKIP_WHEEL=1 (the Rust-only commands do not need it).
if [ "${MTROBUST_SKIP_WHEEL:-0}" != "1" ]; then
  if ! "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as md, sys
need = {"maturin": "1.8", "pytest": "8", "pandas": "2", "numpy": "1.24"}
for name, least in need.items():
    have = tuple(int(p) for p in md.version(name).split(".")[:2] if p.isdigit())
    want = tuple(int(p) for p in least.split("."))
    if have < want:
        sys.exit(1)
PY
  then
    echo "setup: installing maturin, pytest, pandas into $VENV (once)" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "maturin>=1.8,<2" "pytest>=8" "pandas>=2" "numpy>=1.24"
  fi
  root=$(pwd)
  echo "setup: building the Python wheel (python/, maturin --release)" >&2
  (
    cd python
    export PATH="$root/$VENV/bin:$PATH" VIRTUAL_ENV="$root/$VENV" LIBTORCH_USE_PYTORCH=1 CARGO_TARGET_DIR="$root/target"
    rm -f "$root"/target/wheels/mtrobust-*.whl
    "$root/$VENV/bin/maturin" build --release --quiet -i "$root/$VENV/bin/python" --out "$root/target/wheels" >&2
  )
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps target/wheels/mtrobust-*.whl
  echo "setup: installed $(ls target/wheels/mtrobust-*.whl) into $VENV" >&2
fi
