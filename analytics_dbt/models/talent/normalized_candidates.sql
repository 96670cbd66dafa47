{{ config(materialized='table') }}

with

source as (

    select * from {{ source('talent', 'raw_candidates') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by candidate_id
            order by ingested_at desc, source_file desc, line_number desc
        ) as recency_rank

    from source

),

latest as (

    select * from ranked
    where recency_rank = 1

),

skill_items as (

    select
        candidate_id,
        unnest(string_to_array(replace(skills, ',', ';'), ';')) as skill

    from latest

),

distinct_skills as (

    select distinct
        candidate_id,
        {{ normalize_text('skill') }} as skill

    from skill_items

),

skill_lists as (

    select
        candidate_id,
        string_agg(skill, ';' order by {{ binary_order('skill') }}) as skills

    from distinct_skills

    where skill is not null

    group by 1

),

normalized as (

    -- `location` and `summary` are keywords to sqlfluff, but names of the raw contract.
    select
        latest.candidate_id,
        {{ normalize_text('latest.full_name', lowercase=false) }} as full_name,
        {{ normalize_text('latest.title') }} as title,
        {{ normalize_text('latest.location') }} as location,  -- noqa: RF04
        skill_lists.skills,
        {{ normalize_text('latest.summary') }} as summary,  -- noqa: RF04
        latest.years_experience,
        latest.record_hash,
        latest.source_file,
        latest.line_number,
        latest.ingested_at

    from latest

    left join skill_lists
        on latest.candidate_id = skill_lists.candidate_id

),

embedded_text as (

    select
        *,
        concat_ws(
            '. ', title, 'skills: ' || replace(skills, ';', ', '), summary
        ) as text_to_embed

    from normalized

),

final as (

    select
        candidate_id,
        full_name,
        title,
        location,
        skills,
        summary,
        years_experience,
        text_to_embed,
        md5(text_to_embed) as content_hash,
        record_hash,
        source_file,
        line_number,
        ingested_at

    from embedded_text

)

select * from final
