-- KPI recurring_incidents: incidents created in the period that have an earlier incident
-- of the same org, service, category and subcategory (a missing category matches a
-- missing one) created in the 30 days (30 × 24 h) before it, strictly earlier.
-- Grain: one row per local month of created_at. Parameters: $start, $end.
-- Output: month, incidents, recurring (counts), recurring_rate (lower is better).
with incidents as (
    select t.org, t.service, t.category, t.subcategory, t.created_at
    from tickets t
    where t.kind = 'incident' and t.created_at >= $start - interval '30 days' and t.created_at < $end
),
instants as (
    select distinct org, service, category, subcategory, created_at from incidents
),
previous as (
    select org, service, category, subcategory, created_at,
        lag(created_at) over (partition by org, service, category, subcategory order by created_at) as previous_at
    from instants
),
flagged as (
    select
        local_month(i.created_at) as month,
        case when p.previous_at >= i.created_at - interval '30 days' then 1 else 0 end as recurring
    from incidents i
    join previous p
        on p.org = i.org and p.service = i.service
        and (p.category is not distinct from i.category)
        and (p.subcategory is not distinct from i.subcategory)
        and p.created_at = i.created_at
    where i.created_at >= $start
)
select month, count(*) as incidents, sum(recurring) as recurring, sum(recurring) * 1.0 / count(*) as recurring_rate
from flagged
group by month
order by month
