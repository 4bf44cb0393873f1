-- KPI resolution_time: tickets resolved in the period (status resolved or closed now,
-- resolved_at in the period), time from created_at to resolved_at.
-- Grain: one row per local month of resolved_at, desk, priority.
-- Parameters: $start, $end.
-- Output: month, desk, priority, resolved (count), mean_h / median_h / p90_h (wall-clock
-- hours), mean_bh / median_bh / p90_bh (business hours in the org's calendar, minus the
-- business time spent `pending` between creation and resolution), sla_ttr_rate (share
-- with business TTR <= the TTR target of the priority; higher is better).
-- Medians and p90 are exact (quantile_cont: percentile_cont's linear interpolation without
-- DataFusion's 1e-6 rounding of the weight); means are exact sums of microseconds divided
-- by the count. Lower times are better.
-- Only the tickets in scope and their own events are read (one window pass).
with resolved as (
    select t.source, t.ticket_id, t.org, t.desk, t.priority, t.created_at, t.resolved_at
    from tickets t
    where t.status in ('resolved', 'closed') and t.resolved_at >= $start and t.resolved_at < $end
),
history as (
    -- each status event of those tickets, until the next one
    select
        r.source, r.ticket_id, r.org, r.desk, r.priority, r.created_at, r.resolved_at,
        e.at,
        e.to_value as status,
        lead(e.at) over (partition by r.source, r.ticket_id order by e.at, e.event_id) as next_at
    from resolved r
    left join events e on e.source = r.source and e.ticket_id = r.ticket_id and e.kind = 'status'
),
per_ticket as (
    select
        org, desk, priority, created_at, resolved_at,
        sum(case when status = 'pending' then
            business_micros(org, greatest(at, created_at), least(coalesce(next_at, resolved_at), resolved_at))
            else 0 end) as pending_us
    from history
    group by source, ticket_id, org, desk, priority, created_at, resolved_at
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
)
select
    month,
    desk,
    priority,
    count(*) as resolved,
    sum(wall_us) / 3600000000.0 / count(*) as mean_h,
    quantile_cont(wall_us / 3600000000.0, 0.5) as median_h,
    quantile_cont(wall_us / 3600000000.0, 0.9) as p90_h,
    sum(ttr_us) / 3600000000.0 / count(*) as mean_bh,
    quantile_cont(ttr_us / 3600000000.0, 0.5) as median_bh,
    quantile_cont(ttr_us / 3600000000.0, 0.9) as p90_bh,
    sum(case when ttr_us <= ttr_s * 1000000 then 1 else 0 end) * 1.0 / count(*) as sla_ttr_rate
from times
group by month, desk, priority
order by month, desk, priority
