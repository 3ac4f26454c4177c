"""The bench's compiled copy of the tree: what it copies, and when it is built again."""

from __future__ import annotations

from pathlib import Path

from bench.compiled_tree import BUILT_MARK, compiled_tree, tree_files, tree_hash


def _tree(root: Path) -> Path:
    for relative, text in {"notifier/fanout/delivery.py": "x = 1\n", "setup.py": "", "docs/a.md": "a",
                           ".git/HEAD": "ref", ".venv/bin/python": "", "build/compiled/old/x.py": "",
                           "notifier/fanout/delivery.cpython-311-x86_64-linux-gnu.so": "",
                           "notifier/__pycache__/x.pyc": "", "bench/results/REPORT.md": "",
                           "notifier/build/kept.py": ""}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def test_the_copy_holds_sources_and_docs_but_no_repository_environment_build_or_compiled_module(tmp_path):
    """Version control, the virtualenv, build output, caches, results and compiled modules stay behind; a source folder
    named like an ignored root folder does not."""
    assert tree_files(_tree(tmp_path)) == [Path("docs/a.md"), Path("notifier/build/kept.py"),
                                           Path("notifier/fanout/delivery.py"), Path("setup.py")]


def test_a_changed_source_changes_the_hash(tmp_path):
    """Editing one byte of a source names a new copy, so a stale compiled module is never measured."""
    root = _tree(tmp_path)
    before = tree_hash(root)
    (root / "notifier/fanout/delivery.py").write_text("x = 2\n")
    assert tree_hash(root) != before


def test_an_ignored_file_leaves_the_hash_alone(tmp_path):
    """Bench results or caches written into the tree do not force a rebuild."""
    root = _tree(tmp_path)
    before = tree_hash(root)
    (root / "bench/results/REPORT.md").write_text("new figures")
    assert tree_hash(root) == before


def test_a_built_copy_of_the_same_tree_is_reused(tmp_path):
    """With a finished copy named by the tree's hash in place, that copy is returned and nothing is compiled."""
    root = _tree(tmp_path / "repo")
    parent = tmp_path / "compiled"
    built = parent / tree_hash(root)
    built.mkdir(parents=True)
    (built / BUILT_MARK).write_text("done\n")
    assert compiled_tree(root, parent) == built
