-- KPI first_level: tickets resolved in the period (status resolved or closed now,
-- resolved_at in the period) that never left level 1.
-- Grain: one row per local month of resolved_at, desk. Parameters: $start, $end.
-- Output: month, desk, resolved (count), first_level (count with level = 1),
-- first_level_rate (higher is better).
select
    local_month(t.resolved_at) as month,
    t.desk,
    count(*) as resolved,
    sum(case when t.level = 1 then 1 else 0 end) as first_level,
    sum(case when t.level = 1 then 1 else 0 end) * 1.0 / count(*) as first_level_rate
from tickets t
where t.status in ('resolved', 'closed') and t.resolved_at >= $start and t.resolved_at < $end
group by local_month(t.resolved_at), t.desk
order by month, desk
