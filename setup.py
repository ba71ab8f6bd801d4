"""The compiled kernels (engines/common/kernels.py, their C in engines/common/kernels_c/);
everything else is in pyproject.toml.

The extension is optional: where it does not build, the install goes on and the engines
run their Python.
"""

from pathlib import Path

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "engines.common._kernels",
            sorted(str(path) for path in Path("engines/common/kernels_c").glob("*.c")),
            depends=sorted(str(path) for path in Path("engines/common/kernels_c").glob("*.h")),
            optional=True,
            # Products and sums exactly as Python makes them: no fused multiply-add.
            extra_compile_args=["-O2", "-ffp-contract=off"],
        )
    ]
)
