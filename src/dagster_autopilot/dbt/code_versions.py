"""Code versions that follow a dbt node's logic rather than its text.

dagster-dbt hashes a model's raw SQL, so a comment or a reflowed line rebuilds it, while an edited
macro rebuilds nothing. Here the version hashes the SQL with comments and layout removed, the
materialization config, and the bodies of every project macro the node uses, transitively.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

# Comments and string literals in one pass: literals are kept verbatim (a `--` inside a string is
# data), comments are dropped. Jinja comments count as comments.
_TOKENS = re.compile(
    r"""(?P<literal>'(?:[^']|'')*'|"(?:[^"]|"")*")"""
    r"|(?P<comment>--[^\n]*|/\*.*?\*/|\{#.*?#\})",
    re.DOTALL,
)
_WHITESPACE = re.compile(r"\s+")

# Config keys that change what a node builds; descriptions, docs and tags do not.
_LOGIC_CONFIG_KEYS = (
    "materialized",
    "incremental_strategy",
    "unique_key",
    "on_schema_change",
    "column_types",
    "delimiter",
)

# Macros shipped by dbt itself and by its adapters change only with a dependency upgrade.
_INTERNAL_MACRO_PACKAGES = re.compile(r"^dbt(_[a-z0-9]+)?$")


def normalize_sql(sql: str) -> str:
    """SQL (or Jinja) without comments, with runs of whitespace outside string literals folded."""
    literals: list[str] = []

    def set_aside(match: re.Match[str]) -> str:
        if match.group("literal") is None:
            return " "
        literals.append(match.group("literal"))
        return f"\0{len(literals) - 1}\0"

    folded = _WHITESPACE.sub(" ", _TOKENS.sub(set_aside, sql)).strip()
    return re.sub(r"\0(\d+)\0", lambda m: literals[int(m.group(1))], folded)


class LogicCodeVersions:
    """Logic-based code versions for the nodes of one parsed manifest."""

    def __init__(self, manifest: Mapping[str, Any]):
        self._macros = manifest.get("macros", {})
        self._root_package = manifest.get("metadata", {}).get("project_name")
        # `adapter.dispatch('x')` runs `default__x` or `<adapter>__x`, which dbt does not record as
        # dependencies: index them under the dispatching macro's name so their edits count too.
        self._implementations: dict[tuple[str, str], list[str]] = {}
        for macro_id, macro in self._macros.items():
            prefix, sep, name = macro.get("name", "").partition("__")
            if sep and prefix and name:
                key = (macro.get("package_name", ""), name)
                self._implementations.setdefault(key, []).append(macro_id)
        # A macro is used by hundreds of nodes and a node is asked for again as every child's
        # parent: normalize each text once per manifest.
        self._macro_digests: dict[str, bytes] = {}
        self._versions: dict[str, str | None] = {}

    def _is_internal(self, macro: Mapping[str, Any]) -> bool:
        package = macro.get("package_name", "")
        return package != self._root_package and bool(_INTERNAL_MACRO_PACKAGES.match(package))

    def macros_used(self, node: Mapping[str, Any]) -> list[str]:
        """Every non-internal macro the node calls, directly, through other macros or dispatch."""
        seen: set[str] = set()
        pending = list(node.get("depends_on", {}).get("macros", []))
        while pending:
            macro_id = pending.pop()
            macro = self._macros.get(macro_id)
            if macro_id in seen or macro is None or self._is_internal(macro):
                continue
            seen.add(macro_id)
            pending.extend(macro.get("depends_on", {}).get("macros", []))
            pending.extend(self._implementations.get((macro["package_name"], macro["name"]), []))
        return sorted(seen)

    def _macro_digest(self, macro_id: str) -> bytes:
        """The part of a version that one macro contributes: its id and its normalized body."""
        digest = self._macro_digests.get(macro_id)
        if digest is None:
            body = normalize_sql(self._macros[macro_id]["macro_sql"])
            digest = self._macro_digests[macro_id] = f"\0{macro_id}\0{body}".encode()
        return digest

    def version(self, node: Mapping[str, Any]) -> str | None:
        """A version that changes when the node's logic changes, and only then."""
        unique_id = node.get("unique_id")
        if unique_id is not None and unique_id in self._versions:
            return self._versions[unique_id]
        version = self._compute_version(node)
        if unique_id is not None:
            self._versions[unique_id] = version
        return version

    def _compute_version(self, node: Mapping[str, Any]) -> str | None:
        if node.get("resource_type") == "seed":
            # A seed's logic is its data: dbt checksums the CSV file.
            return node.get("checksum", {}).get("checksum")
        raw_code = node.get("raw_code") or node.get("raw_sql")
        if raw_code is None:
            return None
        config = node.get("config", {})
        digest = hashlib.sha256(normalize_sql(raw_code).encode())
        for key in _LOGIC_CONFIG_KEYS:
            digest.update(f"\0{key}={config.get(key)!r}".encode())
        for macro_id in self.macros_used(node):
            digest.update(self._macro_digest(macro_id))
        return digest.hexdigest()[:16]
