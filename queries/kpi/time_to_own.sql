-- KPI time_to_own: tickets created in the period and assigned, business time from
-- created_at to assigned_at in the org's calendar, minus the business time spent
-- `pending` before the assignment (the same rule as resolution_time).
-- Split: month (its rows over a period are its rows over each month of it, in order)
-- Grain: one row per local month of created_at, desk, priority.
-- Parameters: $start, $end.
-- Output: month, desk, priority, owned (count), median_bh (exact), mean_bh (business
-- hours; lower is better), sla_tto_rate (share within the TTO target of the priority;
-- higher is better).
with per_ticket as (
    -- the business time of the ticket's pending periods (view pending_periods), each
    -- clipped to [created_at, assigned_at), summed on the ticket's row of ticket_history,
    -- which carries the ticket's own times, org, desk and priority
    select
        h.org, h.desk, h.priority, h.created_at, h.assigned_at,
        coalesce(pending_business_micros(h.org, h.pending_from, h.pending_to,
            h.created_at, h.assigned_at), 0) as pending_us
    from ticket_history h
    where h.created_at >= $start and h.created_at < $end and h.assigned_at is not null
),
times as (
    select
        local_month(p.created_at) as month,
        p.desk,
        p.priority,
        business_micros(p.org, p.created_at, p.assigned_at) - p.pending_us as tto_us,
        s.tto_s
    from per_ticket p
    left join sla_targets s on s.priority = p.priority
)
select
    month,
    desk,
    priority,
    count(*) as owned,
    quantile_cont(tto_us / 3600000000.0, 0.5) as median_bh,
    sum(tto_us) / 3600000000.0 / count(*) as mean_bh,
    sum(case when tto_us <= tto_s * 1000000 then 1 else 0 end) * 1.0 / count(*) as sla_tto_rate
from times
group by month, desk, priority
order by month, desk, priority
