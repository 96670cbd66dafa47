{#- An expression to order text by its bytes, the same on every adapter, so that a sorted list
    (and any hash of it) does not depend on the database's locale. -#}
{% macro binary_order(column_name) -%}
    {{ return(adapter.dispatch('binary_order', 'analytics')(column_name)) }}
{%- endmacro %}

{#- PostgreSQL sorts by the database collation (often en_US): "C" is byte order. -#}
{% macro default__binary_order(column_name) -%}
    {{ column_name }} collate "C"
{%- endmacro %}

{#- DuckDB's default collation is already byte order. -#}
{% macro duckdb__binary_order(column_name) -%}
    {{ column_name }}
{%- endmacro %}
