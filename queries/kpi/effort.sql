-- KPI effort: time spent on tickets resolved in the period (status resolved or closed
-- now, resolved_at in the period), where the source records it.
-- Grain: one row per local month of resolved_at, desk, service_scope.
-- Parameters: $start, $end.
-- Output: month, desk, service_scope, resolved, with_effort (counts), effort_min (sum of
-- effort_minutes), mean_effort_min (mean over tickets with a recorded effort).
-- Sums are taken in exact thousandths of a minute, so they do not depend on the order of
-- parallel aggregation.
select
    local_month(t.resolved_at) as month,
    t.desk,
    t.service_scope,
    count(*) as resolved,
    count(t.effort_minutes) as with_effort,
    sum(arrow_cast(round(t.effort_minutes * 1000), 'Int64')) / 1000.0 as effort_min,
    sum(arrow_cast(round(t.effort_minutes * 1000), 'Int64')) / 1000.0 / nullif(count(t.effort_minutes), 0) as mean_effort_min
from tickets t
where t.status in ('resolved', 'closed') and t.resolved_at >= $start and t.resolved_at < $end
group by local_month(t.resolved_at), t.desk, t.service_scope
order by month, desk, service_scope
