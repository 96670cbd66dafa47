with

customer_orders as (

    select * from {{ ref('customer_orders') }}

),

final as (

    select
        customer_id,
        full_name,
        number_of_orders,
        lifetime_value,
        case
            when number_of_orders = 0 then 'prospect'
            when number_of_orders >= 5 or lifetime_value >= 1000 then 'vip'
            when number_of_orders >= 2 then 'regular'
            else 'new'
        end as segment

    from customer_orders

)

select * from final
