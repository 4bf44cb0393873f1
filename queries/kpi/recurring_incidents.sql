-- KPI recurring_incidents: incidents created in the period that have an earlier incident
-- of the same org, service, category and subcategory (a missing category matches a
-- missing one) created in the 30 days (30 × 24 h) before it, strictly earlier.
-- Split: month (its rows over a period are its rows over each month of it, in order)
-- Grain: one row per local month of created_at. Parameters: $start, $end.
-- Output: month, incidents, recurring (counts), recurring_rate (lower is better).
with incidents as (
    select t.org, t.service, t.category, t.subcategory, t.created_at
    from tickets t
    where t.kind = 'incident' and t.created_at >= $start - interval '30 days' and t.created_at < $end
),
instants as (
    -- per group of the same org, service, category and subcategory, its distinct instants
    -- (`ticketlake schema`): the incidents of a group at one instant are counted once (n),
    -- all of them recur or none, and they recur (recurring = n) when the group's previous
    -- instant is at most 30 days of 24 h before, in µs
    select unnest(recurring_instants(created_at, 30 * 86400000000)) as i
    from incidents
    group by org, service, category, subcategory
),
flagged as (
    -- the instant's fields as columns (a plan sent to a Ballista cluster cannot name a
    -- field read inside a function's argument)
    select i['at'] as at, i['n'] as n, i['recurring'] as recurring
    from instants
)
select
    local_month(at) as month,
    sum(n) as incidents,
    sum(recurring) as recurring,
    sum(recurring) * 1.0 / sum(n) as recurring_rate
from flagged
where at >= $start
group by month
order by month
