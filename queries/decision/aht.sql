-- Decision inputs aht_g and aht_s: mean recorded effort (minutes) of the tickets resolved
-- in the window (status resolved or closed now), on group services and on school
-- services. Null when no ticket of that scope has a recorded effort.
-- Grain: one row. Parameters: $start, $end (the window).
-- Output: group_with_effort, school_with_effort (counts), aht_g, aht_s (minutes).
-- Sums are taken in exact thousandths of a minute (as in the effort KPI), so the means do
-- not depend on the order of parallel aggregation.
select
    count(case when t.service_scope = 'group' then t.effort_minutes end) as group_with_effort,
    count(case when t.service_scope = 'school' then t.effort_minutes end) as school_with_effort,
    sum(case when t.service_scope = 'group' then arrow_cast(round(t.effort_minutes * 1000), 'Int64') end) / 1000.0
        / nullif(count(case when t.service_scope = 'group' then t.effort_minutes end), 0) as aht_g,
    sum(case when t.service_scope = 'school' then arrow_cast(round(t.effort_minutes * 1000), 'Int64') end) / 1000.0
        / nullif(count(case when t.service_scope = 'school' then t.effort_minutes end), 0) as aht_s
from tickets t
where t.status in ('resolved', 'closed') and t.resolved_at >= $start and t.resolved_at < $end
