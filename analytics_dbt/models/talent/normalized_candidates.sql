{{ config(materialized='table') }}

with

latest as (

    {{ latest_landed_records(source('talent', 'raw_candidates'), 'candidate_id') }}

),

skill_lists as (

    {{ skill_lists('latest', 'candidate_id') }}

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
