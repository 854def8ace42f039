"""Import torch first and check it is the one the extension was built against.

The compiled core links against the libtorch inside the installed ``torch`` wheel (one libtorch
per process): a different torch minor or C++ ABI would load, then crash on the first call. The
check turns that into an ImportError that says how to fix it.
"""

from __future__ import annotations

import torch

#: The torch minor version the extension is built against (tch 0.24 binds libtorch 2.11).
TORCH_MINOR = "2.11"


def check(version: str | None = None, cxx11_abi: bool | None = None) -> None:
    """Raise ImportError unless torch is ``TORCH_MINOR.*`` with the C++11 ABI."""
    version = torch.__version__ if version is None else version
    cxx11_abi = bool(torch._C._GLIBCXX_USE_CXX11_ABI) if cxx11_abi is None else cxx11_abi
    minor = ".".join(str(version).split("+")[0].split(".")[:2])
    if minor != TORCH_MINOR:
        raise ImportError(
            f"mtrobust is built against torch {TORCH_MINOR}.*, but torch {version} is installed; "
            f"install the matching torch with `pip install 'torch=={TORCH_MINOR}.*'`, or build mtrobust "
            "from source against your torch (scripts/setup.sh in its repository)"
        )
    if not cxx11_abi:
        raise ImportError(
            f"torch {version} was built with the pre-C++11 ABI; mtrobust needs the standard PyPI torch "
            f"wheel (`pip install 'torch=={TORCH_MINOR}.*'`)"
        )
