"""`python -m bench.compiled_tree`: this working tree copied, its delivery path compiled by mypyc; prints the copy's path.

Production builds compile the delivery path (`setup.py`, `NOTIFIER_COMPILE=1`; the Dockerfile
does), so the bench measures the gateway that way by default (`--gateway-build python` for the
pure sources). The tests and the bench need the whole tree beside the compiled modules (the
tests import from the repository root, the bench starts `-m bench.gateway` in it), so the whole
working tree is copied and compiled in place there, never in the working tree itself, where a
compiled module would shadow the source being edited.

The copy is named by a hash of every file copied: built once per change of the tree (about 45 s
on 2 cores), reused until the next one. Older copies are removed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
# Not copied, and so not hashed. At the root: version control, the virtualenv, build output (the copies
# themselves among it), the gateway's default data directory (`var/`, rewritten by every local run, which
# would force a rebuild), bench results and the Node peer's install. Anywhere: caches and compiled modules.
ROOT_IGNORED = {".git", ".venv", "build", "var", "bench/results", "bench/peers/node_modules",
                "bench/peers/package-lock.json"}
IGNORED = ("__pycache__", "*.egg-info", "*.so", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache",
           ".import_linter_cache")
BUILT_MARK = ".compiled"


def _ignored(relative: Path) -> bool:
    return relative.as_posix() in ROOT_IGNORED or any(relative.match(pattern) for pattern in IGNORED)


def tree_files(root: Path) -> list[Path]:
    """The files a copy holds, relative to `root`, sorted."""
    files = []
    for directory, subdirectories, names in os.walk(root):
        here = Path(directory).relative_to(root)
        subdirectories[:] = sorted(name for name in subdirectories if not _ignored(here / name))
        files += [here / name for name in names if not _ignored(here / name)]
    return sorted(files)


def _compiler() -> str:
    """The interpreter and mypyc a copy is compiled for: another of either must not reuse it."""
    try:
        mypy = importlib.metadata.version("mypy")
    except importlib.metadata.PackageNotFoundError:
        mypy = "none"
    return f"{sys.implementation.cache_tag} {sys.version} mypy {mypy}"


def tree_hash(root: Path) -> str:
    """A digest of every copied file's path and bytes, and of the compiler: reused only for the very same build."""
    digest = hashlib.sha256(_compiler().encode() + b"\0")
    for relative in tree_files(root):
        digest.update(str(relative).encode() + b"\0" + (root / relative).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def compiled_tree(root: Path = REPOSITORY, parent: Path | None = None, log=sys.stderr) -> Path:
    """The path of `root` copied with its delivery path compiled (built now unless a copy of this tree exists)."""
    parent = parent or root / "build" / "compiled"
    digest = tree_hash(root)
    tree = parent / digest
    if (tree / BUILT_MARK).exists():
        return tree
    parent.mkdir(parents=True, exist_ok=True)
    # A staging directory of this run's own: two runs building at once never share one.
    staging = Path(tempfile.mkdtemp(prefix=f"{digest}.", suffix=".partial", dir=parent))
    try:
        for relative in tree_files(root):
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / relative, staging / relative)
        print(f"[compiled-tree] compiling the delivery path with mypyc in {tree} ...", file=log, flush=True)
        built = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=staging,
                               env={**os.environ, "NOTIFIER_COMPILE": "1"}, capture_output=True, text=True)
        if built.returncode != 0:
            raise RuntimeError(f"compiling in {staging} failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}")
        if not is_compiled(staging):
            raise RuntimeError(f"{staging}: setup.py built no compiled delivery modules")
        (staging / BUILT_MARK).write_text(digest + "\n")  # before the rename: a copy under its name is whole
        try:
            staging.rename(tree)
        except OSError:
            if not (tree / BUILT_MARK).exists():  # another run finished the same tree first: use that one
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # Finished copies of older trees go (one copy is 16 MB); unfinished ones may be another run's, building.
    for old in parent.iterdir():
        if old != tree and (old / BUILT_MARK).exists():
            shutil.rmtree(old, ignore_errors=True)
    return tree


def is_compiled(root: Path) -> bool:
    """Whether `root`'s delivery modules are compiled: an extension module beside `notifier/fanout/delivery.py`."""
    return any((root / "notifier" / "fanout").glob("delivery.*.so"))


if __name__ == "__main__":
    print(compiled_tree())
