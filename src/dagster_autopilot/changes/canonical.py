"""One text per query meaning: the SQL that sqlglot renders, independent of the author's style.

Two compiled queries that differ only in formatting, comments, keyword or unquoted-identifier case,
or identifier quoting render to the same canonical text, in the target's dialect (so DuckDB's and
PostgreSQL's own syntax is understood).
"""

import hashlib

import sqlglot
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers


def parse(sql: str, dialect: str) -> sqlglot.exp.Expression | None:
    """The query as a sqlglot tree with identifiers normalized, or None when it does not parse."""
    try:
        expressions = [e for e in sqlglot.parse(sql, read=dialect) if e is not None]
    except SqlglotError:
        return None
    if len(expressions) != 1:
        # Several statements (or none) are not one model's query: nothing to compare safely.
        return None
    # Unquoted identifiers fold to the dialect's case; quoted ones keep theirs where it matters.
    return normalize_identifiers(expressions[0], dialect=dialect)


def render(expression: sqlglot.exp.Expression, dialect: str) -> str:
    """The canonical text of a parsed query: every identifier quoted, no comments, one line."""
    return expression.sql(dialect=dialect, identify=True, comments=False, normalize_functions="lower")


def canonical_sql(sql: str, dialect: str) -> str | None:
    """The canonical text of `sql`, or None when sqlglot cannot parse it as one query."""
    expression = parse(sql, dialect)
    return None if expression is None else render(expression, dialect)


def fingerprint(*parts: str) -> str:
    """A short stable hash of `parts` (canonical SQL, build config, ...)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]
