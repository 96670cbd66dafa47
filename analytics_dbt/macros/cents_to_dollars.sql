{#- Convert an integer amount in cents to a dollar amount with two decimals. -#}
{% macro cents_to_dollars(column_name, scale=2) -%}
    {{ return(adapter.dispatch('cents_to_dollars', 'analytics')(column_name, scale)) }}
{%- endmacro %}

{% macro default__cents_to_dollars(column_name, scale) -%}
    cast(({{ column_name }}) / 100.0 as numeric(16, {{ scale }}))
{%- endmacro %}
