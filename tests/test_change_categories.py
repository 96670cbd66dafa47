"""The change categorizer and the column lineage on their own, on pairs of compiled queries."""

import pytest

from dagster_autopilot.changes.lineage import (
    ALL,
    Change,
    ModelShape,
    affected_outputs,
    analyze,
    categorize,
    reads_any,
    relation_key,
)

ORDERS = "analytics.main.orders"
CUSTOMERS = "analytics.main.customers"
PG_ORDERS = "autopilot_test.analytics.orders"

SCHEMA = {
    ORDERS: ["id", "customer_id", "order_date", "status", "amount", "tags"],
    CUSTOMERS: ["id", "name", "country"],
    PG_ORDERS: ["id", "customer_id", "order_date", "status", "amount", "Note"],
}

# The style of this project's staging models, compiled for DuckDB.
STG = """
with source as (select * from "analytics"."main"."orders"),
final as (
    select
        id as order_id,
        customer_id,
        cast(order_date as date) as order_date,
        lower(trim(status)) as status,
        round(amount / 100.0, 2) as amount
    from source
)
select * from final
"""

JOINED = """
with orders as (select * from "analytics"."main"."orders"),
customers as (select id as customer_key, name, country from "analytics"."main"."customers"),
final as (
    select orders.id as order_id, customers.name, orders.amount
    from orders
    left join customers on orders.customer_id = customers.customer_key
)
select * from final
"""

PG = 'select id, status, amount from "autopilot_test"."analytics"."orders" where amount > 0'

NONE: frozenset[str] = frozenset()


def cols(*names: str) -> frozenset[str]:
    return frozenset(names)


PAIRS = [
    # metadata_only: only the text changed
    ("whitespace", STG, " ".join(STG.split()), "duckdb", "metadata_only", NONE),
    (
        "comments",
        STG,
        "-- staging\n" + STG.replace("customer_id,", "customer_id, /* fk */"),
        "duckdb",
        "metadata_only",
        NONE,
    ),
    (
        "keyword case",
        STG,
        STG.replace("select", "SELECT").replace(" as ", " AS ").replace("from", "FROM"),
        "duckdb",
        "metadata_only",
        NONE,
    ),
    (
        "identifier quoting",
        STG,
        STG.replace("lower(trim(status))", 'lower(trim("status"))').replace(
            '"analytics"."main"."orders"', "analytics.main.orders"
        ),
        "duckdb",
        "metadata_only",
        NONE,
    ),
    (
        "unquoted identifier case",
        STG,
        STG.replace("customer_id,", "CUSTOMER_ID,"),
        "duckdb",
        "metadata_only",
        NONE,
    ),
    ("cte renamed", STG, STG.replace("final", "renamed"), "duckdb", "metadata_only", NONE),
    (
        "table alias added",
        JOINED,
        JOINED.replace("from orders\n", "from orders as o\n").replace("orders.", "o."),
        "duckdb",
        "metadata_only",
        NONE,
    ),
    (
        "not-equal spelling",
        "select id from analytics.main.orders where status != 'x'",
        "select id from analytics.main.orders where status <> 'x'",
        "duckdb",
        "metadata_only",
        NONE,
    ),
    (
        "cast spelling duckdb",
        "select amount::int as a from analytics.main.orders",
        "select cast(amount as integer) as a from analytics.main.orders",
        "duckdb",
        "metadata_only",
        NONE,
    ),
    (
        "unused cte column",
        STG,
        STG.replace(
            "from source\n)", "from source\n), unused as (select amount * 2 as doubled from source)"
        ),
        "duckdb",
        "metadata_only",
        NONE,
    ),
    (
        "order by ordinal vs name",
        "select id, amount from analytics.main.orders order by 2",
        "select id, amount from analytics.main.orders order by amount",
        "duckdb",
        "metadata_only",
        NONE,
    ),
    # non_breaking: only added columns
    (
        "added column at end",
        STG,
        STG.replace("as amount\n", "as amount,\n        amount > 10000 as is_large\n"),
        "duckdb",
        "non_breaking",
        cols("is_large"),
    ),
    (
        "added column in the middle",
        STG,
        STG.replace("customer_id,", "customer_id, tags,"),
        "duckdb",
        "non_breaking",
        cols("tags"),
    ),
    (
        "added joined column",
        JOINED,
        JOINED.replace("customers.name,", "customers.name, customers.country,"),
        "duckdb",
        "non_breaking",
        cols("country"),
    ),
    # breaking on columns
    (
        "changed expression in cte",
        STG,
        STG.replace("lower(trim(status))", "upper(trim(status))"),
        "duckdb",
        "breaking",
        cols("status"),
    ),
    (
        "changed source column",
        STG,
        STG.replace("id as order_id", "customer_id as order_id"),
        "duckdb",
        "breaking",
        cols("order_id"),
    ),
    (
        "removed column",
        STG,
        STG.replace("lower(trim(status)) as status,", ""),
        "duckdb",
        "breaking",
        cols("status"),
    ),
    (
        "renamed alias",
        STG,
        STG.replace("as amount\n", "as amount_usd\n"),
        "duckdb",
        "breaking",
        cols("amount", "amount_usd"),
    ),
    (
        "changed and added",
        STG,
        STG.replace("round(amount / 100.0, 2) as amount", "amount as amount, amount as raw_amount"),
        "duckdb",
        "breaking",
        cols("amount", "raw_amount"),
    ),
    (
        "type cast change",
        STG,
        STG.replace("cast(order_date as date)", "cast(order_date as timestamp)"),
        "duckdb",
        "breaking",
        cols("order_date"),
    ),
    (
        "literal change",
        "select id, 'a' as kind from analytics.main.orders",
        "select id, 'b' as kind from analytics.main.orders",
        "duckdb",
        "breaking",
        cols("kind"),
    ),
    (
        "aggregate function change",
        "select customer_id, sum(amount) as total from analytics.main.orders group by 1",
        "select customer_id, avg(amount) as total from analytics.main.orders group by 1",
        "duckdb",
        "breaking",
        cols("total"),
    ),
    (
        "window function change",
        "select id, row_number() over (partition by customer_id order by order_date) as rn from"
        " analytics.main.orders",
        "select id, row_number() over (partition by status order by order_date) as rn from"
        " analytics.main.orders",
        "duckdb",
        "breaking",
        cols("rn"),
    ),
    (
        "union branch column",
        "select id, status from analytics.main.orders union all select id, name from"
        " analytics.main.customers",
        "select id, status from analytics.main.orders union all select id, country from"
        " analytics.main.customers",
        "duckdb",
        "breaking",
        cols("status"),
    ),
    (
        "scalar subquery",
        "select id, (select max(amount) from analytics.main.orders) as top from"
        " analytics.main.customers",
        "select id, (select min(amount) from analytics.main.orders) as top from"
        " analytics.main.customers",
        "duckdb",
        "breaking",
        cols("top"),
    ),
    (
        "joined column source",
        JOINED,
        JOINED.replace("customers.name", "customers.country as name"),
        "duckdb",
        "breaking",
        cols("name"),
    ),
    # breaking on every column: the rows change
    (
        "changed where",
        "select id, amount from analytics.main.orders where amount > 0",
        "select id, amount from analytics.main.orders where amount > 1",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "added where",
        STG,
        STG.replace("from source\n)", "from source where status is not null\n)"),
        "duckdb",
        "breaking",
        ALL,
    ),
    ("join kind", JOINED, JOINED.replace("left join", "inner join"), "duckdb", "breaking", ALL),
    (
        "join condition",
        JOINED,
        JOINED.replace(
            "orders.customer_id = customers.customer_key", "orders.id = customers.customer_key"
        ),
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "cte column used only in join",
        JOINED,
        JOINED.replace("select id as customer_key", "select id + 1 as customer_key"),
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "cte column used in outer where",
        "with s as (select id, amount * 2 as a from analytics.main.orders) select id from s where a > 5",
        "with s as (select id, amount * 3 as a from analytics.main.orders) select id from s where a > 5",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "group by",
        "select customer_id, status, sum(amount) as total from analytics.main.orders group by 1, 2",
        "select customer_id, status, sum(amount) as total from analytics.main.orders group by all",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "group by key expression",
        "select date_trunc('month', order_date) as m, count(*) as n from analytics.main.orders group"
        " by 1",
        "select date_trunc('week', order_date) as m, count(*) as n from analytics.main.orders group by"
        " 1",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "distinct",
        "select status from analytics.main.orders",
        "select distinct status from analytics.main.orders",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "having",
        "select customer_id, count(*) as n from analytics.main.orders group by 1 having count(*) > 1",
        "select customer_id, count(*) as n from analytics.main.orders group by 1 having count(*) > 2",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "limit",
        "select id from analytics.main.orders order by id limit 10",
        "select id from analytics.main.orders order by id limit 20",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "offset",
        "select id from analytics.main.orders order by id limit 10",
        "select id from analytics.main.orders order by id limit 10 offset 5",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "aggregating without group by",
        "select sum(amount) as s, 1 as k from analytics.main.orders",
        "select amount as s, 1 as k from analytics.main.orders",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "union all to union",
        "select id from analytics.main.orders union all select id from analytics.main.customers",
        "select id from analytics.main.orders union select id from analytics.main.customers",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "union distinct branch column",
        "select id from analytics.main.orders union select id from analytics.main.customers",
        "select id from analytics.main.orders union select id + 1 from analytics.main.customers",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "subquery in where",
        "select id from analytics.main.customers where id in (select customer_id from"
        " analytics.main.orders)",
        "select id from analytics.main.customers where id in (select customer_id from"
        " analytics.main.orders where amount > 0)",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "dedupe window in cte",
        "with r as (select *, row_number() over (partition by customer_id order by order_date) as rn"
        " from analytics.main.orders) select id from r where rn = 1",
        "with r as (select *, row_number() over (partition by customer_id order by order_date desc) as"
        " rn from analytics.main.orders) select id from r where rn = 1",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "join target",
        JOINED,
        JOINED.replace('"analytics"."main"."customers"', '"analytics"."main"."customers_v2"'),
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "reordered columns",
        STG,
        STG.replace("id as order_id,\n        customer_id,", "customer_id,\n        id as order_id,"),
        "duckdb",
        "breaking",
        ALL,
    ),
    # DuckDB quirks
    (
        "duckdb :: cast change",
        "select id, amount::int as a from analytics.main.orders",
        "select id, amount::bigint as a from analytics.main.orders",
        "duckdb",
        "breaking",
        cols("a"),
    ),
    (
        "duckdb list_value",
        "select id, list_value(status, 'x') as l from analytics.main.orders",
        "select id, list_value(status, 'y') as l from analytics.main.orders",
        "duckdb",
        "breaking",
        cols("l"),
    ),
    (
        "duckdb struct",
        "select id, {'s': status} as st from analytics.main.orders",
        "select id, struct_pack(s := upper(status)) as st from analytics.main.orders",
        "duckdb",
        "breaking",
        cols("st"),
    ),
    (
        "duckdb lambda",
        "select id, list_transform(tags, t -> t || 'a') as l from analytics.main.orders",
        "select id, list_transform(tags, t -> t || 'b') as l from analytics.main.orders",
        "duckdb",
        "breaking",
        cols("l"),
    ),
    (
        "duckdb qualify",
        "select id, customer_id from analytics.main.orders qualify row_number() over (partition by"
        " customer_id order by id) = 1",
        "select id, customer_id from analytics.main.orders qualify row_number() over (partition by"
        " customer_id order by id desc) = 1",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "duckdb exclude",
        "select * exclude (status, tags) from analytics.main.orders",
        "select * exclude (amount, tags) from analytics.main.orders",
        "duckdb",
        "breaking",
        cols("amount", "status"),
    ),
    (
        "duckdb exclude same",
        "select * exclude (tags) from analytics.main.orders",
        "SELECT id, customer_id, order_date, status, amount FROM analytics.main.orders",
        "duckdb",
        "metadata_only",
        NONE,
    ),
    (
        "duckdb date_trunc",
        "select id, date_trunc('month', order_date) as m from analytics.main.orders",
        "select id, date_trunc('day', order_date) as m from analytics.main.orders",
        "duckdb",
        "breaking",
        cols("m"),
    ),
    # PostgreSQL quirks
    (
        "postgres cast spelling",
        PG.replace("status,", "status::text as status,"),
        PG.replace("status,", "cast(status as text) as status,"),
        "postgres",
        "metadata_only",
        NONE,
    ),
    (
        "postgres :: cast change",
        PG.replace("amount from", "amount::numeric(10, 2) as amount from"),
        PG.replace("amount from", "amount::numeric(12, 4) as amount from"),
        "postgres",
        "breaking",
        cols("amount"),
    ),
    (
        "postgres ilike in where",
        PG + " and status ilike 'a%'",
        PG + " and status ilike 'b%'",
        "postgres",
        "breaking",
        ALL,
    ),
    (
        "postgres ilike to like",
        PG.replace("status,", "status ilike 'a%' as s,"),
        PG.replace("status,", "status like 'a%' as s,"),
        "postgres",
        "breaking",
        cols("s"),
    ),
    (
        "postgres distinct on",
        "select distinct on (customer_id) customer_id, id"
        ' from "autopilot_test"."analytics"."orders" order by customer_id, order_date',
        "select distinct on (customer_id) customer_id, id"
        ' from "autopilot_test"."analytics"."orders" order by customer_id, order_date desc',
        "postgres",
        "breaking",
        ALL,
    ),
    (
        "postgres quoted case is a rename",
        PG.replace("amount from", 'amount as "Amount" from'),
        PG.replace("amount from", 'amount as "amount" from'),
        "postgres",
        "breaking",
        cols("Amount", "amount"),
    ),
    (
        "postgres unquoted case",
        PG.replace("amount from", 'amount as "amount" from'),
        PG.replace("amount from", "amount as AMOUNT from"),
        "postgres",
        "metadata_only",
        NONE,
    ),
    (
        "postgres quoted source column",
        PG.replace("status,", '"Note",'),
        PG.replace("status,", '"Note" as "Note",'),
        "postgres",
        "metadata_only",
        NONE,
    ),
    (
        "postgres dollar string",
        PG.replace("status,", "$$x$$ as status,"),
        PG.replace("status,", "'x' as status,"),
        "postgres",
        "metadata_only",
        NONE,
    ),
    (
        "postgres dollar string change",
        PG.replace("status,", "$$x$$ as status,"),
        PG.replace("status,", "$tag$y$tag$ as status,"),
        "postgres",
        "breaking",
        cols("status"),
    ),
    (
        "postgres distinct on projection",
        'select distinct on (customer_id) customer_id, amount from "autopilot_test"."analytics"."orders"'
        " order by customer_id, order_date",
        "select distinct on (customer_id) customer_id, amount * 2 as amount"
        ' from "autopilot_test"."analytics"."orders"'
        " order by customer_id, order_date",
        "postgres",
        "breaking",
        cols("amount"),
    ),
    (
        "distinct projection",
        "select distinct customer_id, amount from analytics.main.orders",
        "select distinct customer_id, amount * 2 as amount from analytics.main.orders",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "set-returning projection",
        "select id, unnest(tags) as tag from analytics.main.orders",
        "select id, unnest(list_distinct(tags)) as tag from analytics.main.orders",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "postgres set-returning projection",
        "select id, generate_series(1, 3) as g from autopilot_test.analytics.orders",
        "select id, generate_series(1, 4) as g from autopilot_test.analytics.orders",
        "postgres",
        "breaking",
        ALL,
    ),
    # unknown
    ("unparseable after", STG, STG + " where (", "duckdb", "unknown", ALL),
    ("unparseable before", "select from from", STG, "duckdb", "unknown", ALL),
    ("multi statement", STG, STG + "; select 1", "duckdb", "unknown", ALL),
    ("not a query", STG, "create table x as " + STG, "duckdb", "unknown", ALL),
    # a parent without a known schema: its `*` reaches the output, so the shape is opaque
    (
        "opaque formatting",
        "select * from analytics.main.unknown",
        "SELECT *\nFROM analytics.main.unknown",
        "duckdb",
        "metadata_only",
        NONE,
    ),
    (
        "opaque change",
        "select * from analytics.main.unknown",
        "select * from analytics.main.unknown where x = 1",
        "duckdb",
        "breaking",
        ALL,
    ),
    (
        "opaque to known",
        "select * from analytics.main.unknown",
        "select a from analytics.main.unknown",
        "duckdb",
        "breaking",
        ALL,
    ),
]


@pytest.mark.parametrize(
    ("before", "after", "dialect", "category", "columns"),
    [p[1:] for p in PAIRS],
    ids=[p[0] for p in PAIRS],
)
def test_categorize_pairs(before, after, dialect, category, columns):
    change = categorize(analyze(before, dialect, SCHEMA), analyze(after, dialect, SCHEMA))
    assert change == Change(category, columns)


def test_pair_table_is_large_enough():
    assert len(PAIRS) >= 45
    assert len({p[0] for p in PAIRS}) == len(PAIRS)


def test_relation_key_normalizes_quoting_and_case():
    assert relation_key('"analytics"."main"."STG_Orders"', "duckdb") == "analytics.main.stg_orders"
    assert relation_key("Analytics.Main.Stg_Orders", "duckdb") == "analytics.main.stg_orders"
    assert (
        relation_key('"autopilot_test"."analytics"."Orders"', "postgres")
        == "autopilot_test.analytics.Orders"
    )
    assert (
        relation_key("autopilot_test.analytics.Orders", "postgres") == "autopilot_test.analytics.orders"
    )


def test_shape_of_a_staging_model():
    shape = analyze(STG, "duckdb", SCHEMA)
    assert shape is not None
    assert shape.columns == ("order_id", "customer_id", "order_date", "status", "amount")
    assert shape.column_sources["order_id"] == {ORDERS: cols("id")}
    assert shape.column_sources["amount"] == {ORDERS: cols("amount")}
    assert shape.structural_sources == {}
    assert shape.reads == {ORDERS: cols("id", "customer_id", "order_date", "status", "amount")}
    assert shape.star_relations == NONE


def test_shape_of_joins_and_groups():
    shape = analyze(JOINED, "duckdb", SCHEMA)
    assert shape is not None
    assert shape.structural_sources == {ORDERS: cols("customer_id"), CUSTOMERS: cols("id")}
    assert shape.column_sources["name"] == {CUSTOMERS: cols("name")}
    assert shape.reads == {ORDERS: cols("id", "amount", "customer_id"), CUSTOMERS: cols("id", "name")}


def test_unknown_schema_is_opaque():
    shape = analyze("select * from analytics.main.unknown", "duckdb", SCHEMA)
    assert shape is not None
    assert shape.columns is None
    assert shape.reads == {"analytics.main.unknown": ALL}
    assert affected_outputs(shape, {"analytics.main.unknown": cols("x")}) == ALL
    assert reads_any(shape, "analytics.main.unknown", cols("x")) is True


def test_empty_schema_entry_counts_as_unknown():
    shape = analyze("select * from analytics.main.orders", "duckdb", {ORDERS: []})
    assert shape is not None
    assert shape.columns is None
    assert shape.reads == {ORDERS: ALL}


def test_unknown_schema_with_named_columns_is_precise():
    sql = "with s as (select * from analytics.main.unknown) select a, b + 1 as c from s"
    shape = analyze(sql, "duckdb", SCHEMA)
    assert shape is not None
    assert shape.columns == ("a", "c")
    assert shape.reads == {"analytics.main.unknown": cols("a", "b")}


def test_unattributable_column_makes_the_shape_opaque():
    # `x` is in neither known schema's list; with an unknown parent it could come from either.
    sql = "select x from analytics.main.orders join analytics.main.unknown u on orders.id = u.id"
    shape = analyze(sql, "duckdb", {ORDERS: ["id"]})
    assert shape is not None
    assert shape.columns is None
    assert shape.reads == {ORDERS: ALL, "analytics.main.unknown": ALL}


def test_unparseable_is_none():
    assert analyze("select (", "duckdb", SCHEMA) is None
    assert analyze("select 1; select 2", "duckdb", SCHEMA) is None


STG_CHILD_STAR = """
with stg as (select * from "analytics"."main"."stg_orders")
select * from stg
"""
STG_CHILD_NAMED = """
with stg as (select * from "analytics"."main"."stg_orders")
select order_id, amount * 2 as double_amount from stg
"""
STG_CHILD_GROUPED = """
with stg as (select * from "analytics"."main"."stg_orders")
select customer_id, sum(amount) as total from stg group by 1
"""
STG_ORDERS = "analytics.main.stg_orders"
OLD_STG = {STG_ORDERS: ["order_id", "customer_id", "order_date", "status", "amount"]}
NEW_STG = {STG_ORDERS: ["order_id", "customer_id", "order_date", "status", "amount", "is_large"]}


def test_star_child_reads_an_added_column():
    new_shape = analyze(STG_CHILD_STAR, "duckdb", NEW_STG)
    assert new_shape is not None
    assert new_shape.reads[STG_ORDERS] == cols(*NEW_STG[STG_ORDERS])
    assert reads_any(new_shape, STG_ORDERS, cols("is_large")) is True
    assert affected_outputs(new_shape, {STG_ORDERS: cols("is_large")}) == cols("is_large")
    # Analyzed against the schema before the column existed, the `*` still lets it through.
    old_shape = analyze(STG_CHILD_STAR, "duckdb", OLD_STG)
    assert old_shape is not None
    assert old_shape.star_relations == cols(STG_ORDERS)
    assert reads_any(old_shape, STG_ORDERS, cols("is_large")) is True
    assert affected_outputs(old_shape, {STG_ORDERS: cols("is_large")}) == ALL
    assert categorize(old_shape, new_shape) == Change("non_breaking", cols("is_large"))


def test_named_child_does_not_read_an_added_column():
    shape = analyze(STG_CHILD_NAMED, "duckdb", NEW_STG)
    assert shape is not None
    assert shape.reads == {STG_ORDERS: cols("order_id", "amount")}
    assert reads_any(shape, STG_ORDERS, cols("is_large")) is False
    assert reads_any(shape, STG_ORDERS, cols("amount")) is True
    assert reads_any(shape, STG_ORDERS, ALL) is True
    assert reads_any(shape, STG_ORDERS, NONE) is False
    assert affected_outputs(shape, {STG_ORDERS: cols("is_large")}) == NONE
    assert affected_outputs(shape, {STG_ORDERS: cols("amount")}) == cols("double_amount")
    assert affected_outputs(shape, {STG_ORDERS: cols("order_id", "status")}) == cols("order_id")
    assert affected_outputs(shape, {STG_ORDERS: ALL}) == ALL
    assert affected_outputs(shape, {STG_ORDERS: NONE}) == NONE
    assert affected_outputs(shape, {}) == NONE


def test_grouping_column_affects_every_output():
    shape = analyze(STG_CHILD_GROUPED, "duckdb", OLD_STG)
    assert shape is not None
    assert shape.structural_sources == {STG_ORDERS: cols("customer_id")}
    assert affected_outputs(shape, {STG_ORDERS: cols("customer_id")}) == ALL
    assert affected_outputs(shape, {STG_ORDERS: cols("amount")}) == cols("total")
    assert affected_outputs(shape, {STG_ORDERS: cols("status")}) == NONE
    assert reads_any(shape, STG_ORDERS, cols("status", "order_date")) is False


def test_unknown_shapes_and_unnamed_parents_fail_safe():
    shape = analyze(STG_CHILD_NAMED, "duckdb", NEW_STG)
    assert affected_outputs(None, {STG_ORDERS: cols("amount")}) == ALL
    assert reads_any(None, STG_ORDERS, cols("amount")) is True
    # A parent the query never names reaches the model some other way: every column.
    assert affected_outputs(shape, {"analytics.main.elsewhere": cols("x")}) == ALL
    assert reads_any(shape, "analytics.main.elsewhere", cols("x")) is True


def test_count_star_reads_the_parent_rows_but_no_column():
    shape = analyze("select count(*) as n from analytics.main.stg_orders", "duckdb", OLD_STG)
    assert shape is not None
    assert shape.reads == {STG_ORDERS: NONE}
    assert reads_any(shape, STG_ORDERS, cols("amount")) is False
    assert affected_outputs(shape, {STG_ORDERS: cols("amount")}) == NONE
    assert affected_outputs(shape, {STG_ORDERS: ALL}) == ALL


def test_metadata_round_trip():
    for sql, schema in (
        (JOINED, SCHEMA),
        (STG_CHILD_STAR, OLD_STG),
        ("select * from analytics.main.unknown", {}),
    ):
        shape = analyze(sql, "duckdb", schema)
        assert shape is not None
        data = shape.to_metadata()
        assert ModelShape.from_metadata(data) == shape
        assert ModelShape.from_metadata(data).to_metadata() == data


def test_analysis_is_deterministic():
    assert analyze(JOINED, "duckdb", SCHEMA) == analyze(JOINED, "duckdb", SCHEMA)
    assert (
        analyze(JOINED, "duckdb", SCHEMA).column_fingerprints
        == analyze(
            " ".join(JOINED.split()).upper().replace('"ANALYTICS"."MAIN"', '"analytics"."main"'),
            "duckdb",
            SCHEMA,
        ).column_fingerprints
    )


@pytest.mark.parametrize(
    "sql",
    [
        "select a.id, u.v from analytics.main.orders a, unnest(a.tags) as u(v)",
        "with recursive r as (select id from analytics.main.orders union all select r.id + 1 from r)"
        " select id from r",
        "select hash(*) as h from analytics.main.orders",
        "select columns('amount|status') from analytics.main.orders",
        "with s as (select distinct * from analytics.main.unknown) select a from s",
    ],
    ids=["lateral unnest", "recursive cte", "star argument", "duckdb columns", "distinct star"],
)
def test_what_the_lineage_cannot_follow_is_opaque(sql):
    shape = analyze(sql, "duckdb", SCHEMA)
    assert shape is not None
    assert shape.columns is None
    assert shape.reads
    assert set(shape.reads.values()) == {ALL}
    assert affected_outputs(shape, {next(iter(shape.reads)): cols("id")}) == ALL
