{#- Trim surrounding whitespace and lowercase a text column. -#}
{% macro clean_text(column_name) -%}
    lower(trim({{ column_name }}))
{%- endmacro %}
