-- KPI reopen_rate: tickets whose first transition to `resolved` falls in the period;
-- reopened = the ticket has a status event from resolved or closed to a status other
-- than resolved, closed, canceled (at any time). Needs status history: tickets of a
-- source without events are not counted.
-- Grain: one row per local month of the first resolution.
-- Parameters: $start, $end.
-- Output: month, first_resolved, reopened (counts), reopen_rate (lower is better).
with first_resolution as (
    select e.source, e.ticket_id, min(e.at) as first_resolved_at
    from events e
    where e.kind = 'status' and e.to_value = 'resolved'
    group by e.source, e.ticket_id
),
reopened as (
    select distinct e.source, e.ticket_id
    from events e
    where e.kind = 'status'
        and e.from_value in ('resolved', 'closed')
        and e.to_value not in ('resolved', 'closed', 'canceled')
),
counted as (
    select local_month(f.first_resolved_at) as month, r.ticket_id as reopened_id
    from first_resolution f
    left join reopened r on r.source = f.source and r.ticket_id = f.ticket_id
    where f.first_resolved_at >= $start and f.first_resolved_at < $end
)
select
    month,
    count(*) as first_resolved,
    count(reopened_id) as reopened,
    count(reopened_id) * 1.0 / count(*) as reopen_rate
from counted
group by month
order by month
