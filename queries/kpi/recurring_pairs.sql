-- KPI recurring_pairs: where recurring incidents come from. The incidents and the rule
-- of recurring_incidents (an earlier incident of the same org, service, category and
-- subcategory created in the 30 days before it), counted over the whole period by
-- service and category, most recurring first.
-- Grain: one row per service, category (null: no category). Parameters: $start, $end.
-- Output: service, category, incidents, recurring (counts), recurring_rate (lower is
-- better).
with incidents as (
    select t.org, t.service, t.category, t.subcategory, t.created_at
    from tickets t
    where t.kind = 'incident' and t.created_at >= $start - interval '30 days' and t.created_at < $end
),
instants as (
    -- the incidents of a group at one instant, counted once: all of them recur, or none
    select org, service, category, subcategory, created_at, count(*) as n
    from incidents
    group by org, service, category, subcategory, created_at
),
previous as (
    select service, category, created_at, n,
        lag(created_at) over (partition by org, service, category, subcategory order by created_at) as previous_at
    from instants
),
flagged as (
    -- instants in µs: the previous one at most 30 days of 24 h before (an interval
    -- subtracted row by row costs five times more)
    select
        service,
        category,
        n,
        case when arrow_cast(created_at, 'Int64') - arrow_cast(previous_at, 'Int64')
            <= 30 * 86400000000 then n else 0 end as recurring
    from previous
    where created_at >= $start
)
select
    service,
    category,
    sum(n) as incidents,
    sum(recurring) as recurring,
    sum(recurring) * 1.0 / sum(n) as recurring_rate
from flagged
group by service, category
order by recurring desc, incidents desc, service, category nulls first
