{#- The latest landed version of each record: files are appended, never updated, so a record
    sent again (or changed) appears once per landing, and the newest landing wins. -#}
{% macro latest_landed_records(relation, id_column) -%}
    select *
    from (
        select
            *,
            row_number() over (
                partition by {{ id_column }}
                order by ingested_at desc, source_file desc, line_number desc
            ) as recency_rank
        from {{ relation }}
    ) as ranked
    where recency_rank = 1
{%- endmacro %}

{#- Each record's skills as one sorted, distinct, `;`-separated list of normalized names.
    Landing files separate skills with `,` or `;`; byte order keeps the list (and the content
    hash built from it) the same on DuckDB and PostgreSQL. -#}
{% macro skill_lists(relation, id_column) -%}
    select
        {{ id_column }},
        string_agg(skill, ';' order by {{ binary_order('skill') }}) as skills
    from (
        select distinct
            {{ id_column }},
            {{ normalize_text('skill') }} as skill
        from (
            select
                {{ id_column }},
                unnest(string_to_array(replace(skills, ',', ';'), ';')) as skill
            from {{ relation }}
        ) as skill_items
    ) as distinct_skills
    where skill is not null
    group by {{ id_column }}
{%- endmacro %}
