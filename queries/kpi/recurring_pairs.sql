-- KPI recurring_pairs: where recurring incidents come from. The incidents and the rule
-- of recurring_incidents (an earlier incident of the same org, service, category and
-- subcategory created in the 30 days before it), counted over the whole period by
-- service and category, most recurring first.
-- Split: month, then combined by queries/combine/recurring_pairs.sql (a chunk's rows are
-- summed with the others')
-- Grain: one row per service, category (null: no category). Parameters: $start, $end.
-- Output: service, category, incidents, recurring (counts), recurring_rate (lower is
-- better).
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
    select service, category, unnest(recurring_instants(created_at, 30 * 86400000000)) as i
    from incidents
    group by org, service, category, subcategory
),
flagged as (
    -- the instant's fields as columns (a plan sent to a Ballista cluster cannot name a
    -- field read inside a function's argument)
    select service, category, i['at'] as at, i['n'] as n, i['recurring'] as recurring
    from instants
)
select
    service,
    category,
    sum(n) as incidents,
    sum(recurring) as recurring,
    sum(recurring) * 1.0 / sum(n) as recurring_rate
from flagged
where at >= $start
group by service, category
order by recurring desc, incidents desc, service, category nulls first
