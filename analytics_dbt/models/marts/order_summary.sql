with

orders as (

    select * from {{ ref('stg_orders') }}

),

orders_by_month as (

    select
        order_id,
        status,
        amount,
        cast(date_trunc('month', order_date) as date) as order_month

    from orders

),

final as (

    select
        order_month,
        count(order_id) as number_of_orders,
        sum(case when status = 'completed' then 1 else 0 end) as completed_orders,
        sum(
            case when status in ('return_pending', 'returned') then 1 else 0 end
        ) as returned_orders,
        sum(amount) as gross_revenue,
        sum(case when status != 'returned' then amount else 0 end) as net_revenue,
        avg(amount) as average_order_value

    from orders_by_month

    group by 1

)

select * from final
