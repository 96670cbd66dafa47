"""Skips `dbt parse` when nothing it reads has changed since the last parse.

`dg` re-parses the dbt project on every command (about 20 s here, minutes at 1,000+ models). The
parse is a pure function of the project's files, the dbt and dagster-dbt versions, the target and
the environment variables the project reads, so a hash of those decides whether it can be skipped.
"""

import hashlib
import os
import re
from collections.abc import Iterable
from importlib.metadata import version
from pathlib import Path

# Build output and installed packages: written by dbt, not read by the parse as sources.
_DERIVED = frozenset({"target", "logs", "dbt_packages", "dbt_modules", ".user.yml", "__pycache__"})
_ENV_VAR_USE = re.compile(rb"""env_var\(\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]""")
FINGERPRINT_FILE = "parse_fingerprint"


def source_files(directory: Path) -> Iterable[Path]:
    """The files of a dbt project a parse reads, in a stable order: not build output or dotfiles."""
    for entry in sorted(directory.iterdir()):
        if entry.name in _DERIVED or entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from source_files(entry)
        elif entry.is_file():
            yield entry


def project_fingerprint(*roots: Path) -> str:
    """A hash of everything a `dbt parse` of the project (and its profiles folder) depends on."""
    digest = hashlib.sha256()
    env_vars_read: set[bytes] = set()
    for root in roots:
        for path in source_files(root):
            content = path.read_bytes()
            env_vars_read.update(_ENV_VAR_USE.findall(content))
            digest.update(f"\0{root.name}/{path.relative_to(root)}\0".encode())
            digest.update(content)
    for package in ("dbt-core", "dagster-dbt"):
        digest.update(f"\0{package}={version(package)}".encode())
    for name in sorted({"DBT_TARGET", "DBT_PROFILE", *(n.decode() for n in env_vars_read)}):
        digest.update(f"\0{name}={os.environ.get(name)}".encode())
    return digest.hexdigest()


def remembered(state_path: Path) -> str | None:
    """The fingerprint the state at `state_path` was parsed from, if known."""
    marker = state_path.parent / FINGERPRINT_FILE
    return marker.read_text() if marker.exists() else None


def is_fresh(state_path: Path, fingerprint: str, manifest_path: Path) -> bool:
    """True when the state at `state_path` was parsed from exactly this fingerprint."""
    return manifest_path.exists() and remembered(state_path) == fingerprint


def remember(state_path: Path, fingerprint: str) -> None:
    (state_path.parent / FINGERPRINT_FILE).write_text(fingerprint)
