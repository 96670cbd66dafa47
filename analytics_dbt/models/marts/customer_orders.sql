with

customers as (

    select * from {{ ref('stg_customers') }}

),

orders as (

    select * from {{ ref('stg_orders') }}

),

customer_order_stats as (

    select
        customer_id,
        min(order_date) as first_order_date,
        max(order_date) as most_recent_order_date,
        count(order_id) as number_of_orders,
        sum(case when status != 'returned' then amount else 0 end) as lifetime_value

    from orders

    group by 1

),

final as (

    select
        customers.customer_id,
        customers.full_name,
        customers.email,
        customers.country,
        customers.signup_date,
        customer_order_stats.first_order_date,
        customer_order_stats.most_recent_order_date,
        coalesce(customer_order_stats.number_of_orders, 0) as number_of_orders,
        coalesce(customer_order_stats.lifetime_value, 0) as lifetime_value

    from customers

    left join customer_order_stats
        on customers.customer_id = customer_order_stats.customer_id

)

select * from final
