{{
    config(
        materialized='incremental',
        unique_key='order_date',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns'
    )
}}

with

orders as (

    select * from {{ ref('stg_orders') }}

    {% if is_incremental() %}
    -- Reprocess the latest loaded day (it may have been partial) and anything newer.
    -- coalesce guards an empty target table; portable across DuckDB and PostgreSQL.
    where
        order_date >= (
            select coalesce(max(loaded.order_date), cast('1900-01-01' as date)) as max_order_date
            from {{ this }} as loaded
        )
    {% endif %}

),

final as (

    select
        order_date,
        count(order_id) as number_of_orders,
        sum(amount) as gross_revenue,
        sum(case when status != 'returned' then amount else 0 end) as net_revenue

    from orders

    group by 1

)

select * from final
