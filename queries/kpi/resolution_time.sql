-- KPI resolution_time: tickets resolved in the period (status resolved or closed now,
-- resolved_at in the period), time from created_at to resolved_at.
-- Split: month (its rows over a period are its rows over each month of it, in order)
-- Grain: one row per local month of resolved_at, desk, priority.
-- Parameters: $start, $end.
-- Output: month, desk, priority, resolved (count), mean_h / median_h / p90_h (wall-clock
-- hours), mean_bh / median_bh / p90_bh (business hours in the org's calendar, minus the
-- business time spent `pending` between creation and resolution), sla_ttr_rate (share
-- with business TTR <= the TTR target of the priority; higher is better).
-- Medians and p90 are exact (quantiles_cont: percentile_cont's linear interpolation without
-- DataFusion's 1e-6 rounding of the weight); means are exact sums of microseconds divided
-- by the count. Lower times are better.
with per_ticket as (
    -- the business time of the ticket's pending periods (view pending_periods), each
    -- clipped to [created_at, resolved_at), summed on the ticket's row of ticket_history,
    -- which carries the ticket's own status, times, org, desk and priority
    select
        h.org, h.desk, h.priority, h.created_at, h.resolved_at,
        coalesce(pending_business_micros(h.org, h.pending_from, h.pending_to,
            h.created_at, h.resolved_at), 0) as pending_us
    from ticket_history h
    where h.status in ('resolved', 'closed') and h.resolved_at >= $start and h.resolved_at < $end
),
times as (
    select
        local_month(p.resolved_at) as month,
        p.desk,
        p.priority,
        arrow_cast(p.resolved_at, 'Int64') - arrow_cast(p.created_at, 'Int64') as wall_us,
        business_micros(p.org, p.created_at, p.resolved_at) - p.pending_us as ttr_us,
        s.ttr_s
    from per_ticket p
    left join sla_targets s on s.priority = p.priority
),
by_group as (
    -- the median and p90 of each time from one copy of its values (quantiles_cont)
    select
        month,
        desk,
        priority,
        count(*) as resolved,
        sum(wall_us) as wall_sum_us,
        quantiles_cont(wall_us / 3600000000.0, 0.5, 0.9) as wall_q,
        sum(ttr_us) as ttr_sum_us,
        quantiles_cont(ttr_us / 3600000000.0, 0.5, 0.9) as ttr_q,
        sum(case when ttr_us <= ttr_s * 1000000 then 1 else 0 end) as within_ttr
    from times
    group by month, desk, priority
)
select
    month,
    desk,
    priority,
    resolved,
    wall_sum_us / 3600000000.0 / resolved as mean_h,
    wall_q[1] as median_h,
    wall_q[2] as p90_h,
    ttr_sum_us / 3600000000.0 / resolved as mean_bh,
    ttr_q[1] as median_bh,
    ttr_q[2] as p90_bh,
    within_ttr * 1.0 / resolved as sla_ttr_rate
from by_group
order by month, desk, priority
