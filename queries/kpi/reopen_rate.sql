-- KPI reopen_rate: tickets whose first transition to `resolved` falls in the period;
-- reopened = the ticket has a status event from resolved or closed to a status other
-- than resolved, closed, canceled (at any time). Needs status history: tickets of a
-- source without events are not counted.
-- Grain: one row per local month of the first resolution.
-- Parameters: $start, $end.
-- Output: month, first_resolved, reopened (counts), reopen_rate (lower is better).
-- Method: the view ticket_history holds each ticket's first resolution and reopen flag.
select
    local_month(h.first_resolved_at) as month,
    count(*) as first_resolved,
    count(case when h.reopened then 1 end) as reopened,
    count(case when h.reopened then 1 end) * 1.0 / count(*) as reopen_rate
from ticket_history h
where h.first_resolved_at >= $start and h.first_resolved_at < $end
group by local_month(h.first_resolved_at)
order by month
