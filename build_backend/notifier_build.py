"""setuptools' build backend, asking for mypyc only when the build compiles (NOTIFIER_COMPILE=1, see setup.py).

Every hook but `build_wheel` runs setup.py with NOTIFIER_COMPILE hidden: the requirement hooks
run before mypyc is installed, metadata does not depend on it (compiling there would run mypyc
twice per wheel), an sdist ships sources. An editable install is never compiled: its modules
would shadow the sources being edited, and a change to a `.py` file would silently not run;
the variable is ignored there, saying so.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403  (the rest of the backend as setuptools has it)

SETUP_CFG = Path(__file__).resolve().parent.parent / "setup.cfg"


def _requirements(section: str, option: str) -> list[str]:
    """A requirement list of setup.cfg, comments dropped: the versions have one home."""
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    lines = (line.strip() for line in parser[section][option].splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _compile_requirements() -> list[str]:
    """mypyc (the dev extra's mypy, the one .ci/run compiles with) and the runtime dependencies it types against.

    Without msgspec and aiohttp in the isolated build environment mypyc stops at msgspec's class keywords.
    """
    mypy = [line for line in _requirements("options.extras_require", "dev") if line.startswith("mypy")]
    return [*mypy, *_requirements("options", "install_requires")]


def _compiling() -> bool:
    return os.environ.get("NOTIFIER_COMPILE") == "1"


@contextlib.contextmanager
def _pure() -> Iterator[None]:
    """NOTIFIER_COMPILE hidden from setup.py for one hook, put back after (a frontend may run several in one process)."""
    saved = os.environ.pop("NOTIFIER_COMPILE", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["NOTIFIER_COMPILE"] = saved


def get_requires_for_build_wheel(config_settings=None):
    compiling = _compiling()
    with _pure():
        return [*build_meta.get_requires_for_build_wheel(config_settings), *(_compile_requirements() if compiling else [])]


def _without_compile(hook: Callable[..., Any]) -> Callable[..., Any]:
    """setuptools' `hook`, run with NOTIFIER_COMPILE hidden (see the module's docstring for why each one is)."""

    def wrapped(*arguments: Any, **keywords: Any) -> Any:
        with _pure():
            return hook(*arguments, **keywords)

    return wrapped


prepare_metadata_for_build_wheel = _without_compile(build_meta.prepare_metadata_for_build_wheel)
get_requires_for_build_sdist = _without_compile(build_meta.get_requires_for_build_sdist)
build_sdist = _without_compile(build_meta.build_sdist)
get_requires_for_build_editable = _without_compile(build_meta.get_requires_for_build_editable)
prepare_metadata_for_build_editable = _without_compile(build_meta.prepare_metadata_for_build_editable)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    if _compiling():
        print("notifier: NOTIFIER_COMPILE=1 ignored for an editable install (compiled modules would shadow the "
              "sources being edited); `pip install .` or build a wheel to compile", file=sys.stderr)
    with _pure():
        return build_meta.build_editable(wheel_directory, config_settings, metadata_directory)
