-- Decision inputs aht_g and aht_s: mean recorded effort (minutes) of the tickets resolved
-- in the window (status resolved or closed now), on group services and on school
-- services. Null when no ticket of that scope has a recorded effort.
-- Grain: one row. Parameters: $start, $end (the window).
-- Output: group_with_effort, school_with_effort (counts), aht_g, aht_s (minutes).
select
    count(case when t.service_scope = 'group' then t.effort_minutes end) as group_with_effort,
    count(case when t.service_scope = 'school' then t.effort_minutes end) as school_with_effort,
    avg(case when t.service_scope = 'group' then t.effort_minutes end) as aht_g,
    avg(case when t.service_scope = 'school' then t.effort_minutes end) as aht_s
from tickets t
where t.status in ('resolved', 'closed') and t.resolved_at >= $start and t.resolved_at < $end
