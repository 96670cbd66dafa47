{#- Collapse runs of whitespace to one space and trim; lowercase unless told not to.
    Empty results become null, so "   " and a missing value look the same downstream. -#}
{% macro normalize_text(column_name, lowercase=true) -%}
    {%- set squished = "trim(regexp_replace(" ~ column_name ~ ", '\\s+', ' ', 'g'))" -%}
    nullif({{ "lower(" ~ squished ~ ")" if lowercase else squished }}, '')
{%- endmacro %}
