{{ config(materialized='table') }}

with

latest as (

    {{ latest_landed_records(source('talent', 'raw_jobs'), 'job_id') }}

),

skill_lists as (

    {{ skill_lists('latest', 'job_id') }}

),

normalized as (

    -- `location` is a keyword to sqlfluff, but a name of the raw contract.
    select
        latest.job_id,
        {{ normalize_text('latest.title') }} as title,
        {{ normalize_text('latest.company', lowercase=false) }} as company,
        {{ normalize_text('latest.location') }} as location,  -- noqa: RF04
        skill_lists.skills,
        {{ normalize_text('latest.description') }} as description,
        latest.min_years_experience,
        latest.record_hash,
        latest.source_file,
        latest.line_number,
        latest.ingested_at

    from latest

    left join skill_lists
        on latest.job_id = skill_lists.job_id

),

embedded_text as (

    select
        *,
        concat_ws(
            '. ', title, 'skills: ' || replace(skills, ';', ', '), description
        ) as text_to_embed

    from normalized

),

final as (

    select
        job_id,
        title,
        company,
        location,
        skills,
        description,
        min_years_experience,
        text_to_embed,
        md5(text_to_embed) as content_hash,
        record_hash,
        source_file,
        line_number,
        ingested_at

    from embedded_text

)

select * from final
