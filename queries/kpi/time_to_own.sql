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
        t.tto_us,
        t.tto_bh,
        case when t.tto_us <= t.tto_target_s * 1000000 then 1 else 0 end as met
    from ticket_times t
    where t.created_at >= $start and t.created_at < $end and t.assigned_at is not null
)
select
    month,
    desk,
    priority,
    count(*) as owned,
    quantile_cont(tto_bh, 0.5) as median_bh,
    sum(tto_us) / 3600000000.0 / count(*) as mean_bh,
    sum(met) * 1.0 / count(*) as sla_tto_rate
from owned
group by month, desk, priority
order by month, desk, priority
