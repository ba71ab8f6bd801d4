"""The compiled kernels (engines/common/kernels.py); everything else is in pyproject.toml.

The extension is optional: where it does not build, the install goes on and the engines
run their Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "engines.common._kernels",
            ["engines/common/_kernels.c"],
            optional=True,
            # Products and sums exactly as Python makes them: no fused multiply-add.
            extra_compile_args=["-O2", "-ffp-contract=off"],
        )
    ]
)
