"""setuptools' build backend, asking for mypyc only when the build compiles (NOTIFIER_COMPILE=1, see setup.py).

An editable install is never compiled: its modules would shadow the sources being edited, and a
change to a `.py` file would silently not run. NOTIFIER_COMPILE is ignored there, saying so.
"""

from __future__ import annotations

import configparser
import os
import sys

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403  (the rest of the backend as setuptools has it)

# mypyc is part of mypy: the range the dev extra pins, which .ci/run's compiled test run uses (setup.cfg).
MYPYC_REQUIREMENT = "mypy>=2.4,<2.5"


def _runtime_requirements() -> list[str]:
    """setup.cfg's install_requires: mypyc types the compiled modules against them (msgspec's Struct, aiohttp's web).

    Without them in the isolated build environment the compile stops at msgspec's class keywords.
    """
    parser = configparser.ConfigParser()
    parser.read(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.cfg"))
    lines = (line.strip() for line in parser["options"]["install_requires"].splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pure() -> bool:
    """Drop NOTIFIER_COMPILE for the rest of this hook's process; whether it was set."""
    return os.environ.pop("NOTIFIER_COMPILE", None) == "1"


def get_requires_for_build_wheel(config_settings=None):
    # setup.py runs here to read its requirements, before they are installed: without mypyc yet.
    compiling = _pure()
    extra = [MYPYC_REQUIREMENT, *_runtime_requirements()] if compiling else []
    return [*build_meta.get_requires_for_build_wheel(config_settings), *extra]


def get_requires_for_build_editable(config_settings=None):
    _pure()
    return build_meta.get_requires_for_build_editable(config_settings)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    _pure()
    return build_meta.prepare_metadata_for_build_editable(metadata_directory, config_settings)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    if _pure():
        print("notifier: NOTIFIER_COMPILE=1 ignored for an editable install (compiled modules would shadow the "
              "sources being edited); `pip install .` or build a wheel to compile", file=sys.stderr)
    return build_meta.build_editable(wheel_directory, config_settings, metadata_directory)
