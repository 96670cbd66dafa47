"""The warehouse the Python assets read and write: DuckDB or PostgreSQL, the same one dbt uses."""
