-- KPI time_to_own: tickets created in the period and assigned, business time from
-- created_at to assigned_at (pending time removed).
-- Grain: one row per local month of created_at, desk, priority.
-- Parameters: $start, $end.
-- Output: month, desk, priority, owned (count), median_bh, mean_bh (business hours; lower
-- is better), sla_tto_rate (share within the TTO target of the priority; higher is better).
with owned as (
    select
        local_month(t.created_at) as month,
        t.desk,
        t.priority,
        t.tto_bs / 3600.0 as tto_bh,
        case when t.tto_bs <= t.tto_target_s then 1.0 else 0.0 end as met
    from ticket_times t
    where t.created_at >= $start and t.created_at < $end and t.assigned_at is not null
)
select
    month,
    desk,
    priority,
    count(*) as owned,
    percentile_cont(0.5) within group (order by tto_bh) as median_bh,
    avg(tto_bh) as mean_bh,
    avg(met) as sla_tto_rate
from owned
group by month, desk, priority
order by month, desk, priority
