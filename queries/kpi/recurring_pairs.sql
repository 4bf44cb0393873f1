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
    select distinct org, service, category, subcategory, created_at from incidents
),
previous as (
    select org, service, category, subcategory, created_at,
        lag(created_at) over (partition by org, service, category, subcategory order by created_at) as previous_at
    from instants
),
flagged as (
    select
        i.service,
        i.category,
        case when p.previous_at >= i.created_at - interval '30 days' then 1 else 0 end as recurring
    from incidents i
    join previous p
        on p.org = i.org and p.service = i.service
        and (p.category is not distinct from i.category)
        and (p.subcategory is not distinct from i.subcategory)
        and p.created_at = i.created_at
    where i.created_at >= $start
)
select
    service,
    category,
    count(*) as incidents,
    sum(recurring) as recurring,
    sum(recurring) * 1.0 / count(*) as recurring_rate
from flagged
group by service, category
order by recurring desc, incidents desc, service, category nulls first
