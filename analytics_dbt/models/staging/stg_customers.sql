with

source as (

    select * from {{ ref('raw_customers') }}

),

final as (

    select
        id as customer_id,
        trim(first_name) as first_name,
        trim(last_name) as last_name,
        trim(first_name) || ' ' || trim(last_name) as full_name,
        {{ clean_text('email') }} as email,
        upper(trim(country)) as country,
        cast(signup_date as date) as signup_date

    from source

)

select * from final
