-- KPI resolution_time: tickets resolved in the period (status resolved or closed now,
-- resolved_at in the period), time from created_at to resolved_at.
-- Grain: one row per local month of resolved_at, desk, priority.
-- Parameters: $start, $end.
-- Output: month, desk, priority, resolved (count), mean_h / median_h / p90_h (wall-clock
-- hours), mean_bh / median_bh / p90_bh (business hours, pending time removed),
-- sla_ttr_rate (share with business TTR <= the TTR target of the priority; higher is better).
-- Medians and p90 are exact (quantile_cont: percentile_cont's linear interpolation without
-- DataFusion's 1e-6 rounding of the weight); means are exact sums
-- of microseconds divided by the count. Lower times are better.
with resolved as (
    select
        local_month(t.resolved_at) as month,
        t.desk,
        t.priority,
        t.ttr_wall_us,
        t.ttr_us,
        t.ttr_h,
        t.ttr_bh,
        case when t.ttr_us <= t.ttr_target_s * 1000000 then 1 else 0 end as met
    from ticket_times t
    where t.status in ('resolved', 'closed') and t.resolved_at >= $start and t.resolved_at < $end
)
select
    month,
    desk,
    priority,
    count(*) as resolved,
    sum(ttr_wall_us) / 3600000000.0 / count(*) as mean_h,
    quantile_cont(ttr_h, 0.5) as median_h,
    quantile_cont(ttr_h, 0.9) as p90_h,
    sum(ttr_us) / 3600000000.0 / count(*) as mean_bh,
    quantile_cont(ttr_bh, 0.5) as median_bh,
    quantile_cont(ttr_bh, 0.9) as p90_bh,
    sum(met) * 1.0 / count(*) as sla_ttr_rate
from resolved
group by month, desk, priority
order by month, desk, priority
