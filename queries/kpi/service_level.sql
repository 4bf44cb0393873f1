-- KPI service_level: the month's headline service figures over all desks and priorities.
-- Resolution side: tickets resolved in the period (status resolved or closed now,
-- resolved_at in the period), business TTR as in resolution_time (pending time removed).
-- Ownership side: tickets created in the period and assigned, business TTO as in
-- time_to_own. Medians and p90 are exact over all the month's tickets (they cannot be
-- derived from the per-desk, per-priority medians of those KPIs).
-- Split: month (its rows over a period are its rows over each month of it, in order)
-- Grain: one row per local month (of resolved_at for the resolution side, of created_at
-- for the ownership side). Parameters: $start, $end.
-- Output: month, resolved (count), median_bh, p90_bh (business hours; lower is better),
-- sla_ttr_rate (share within the TTR target of the priority; higher is better), owned
-- (count), tto_median_bh (business hours), sla_tto_rate (share within the TTO target).
-- Both sides read the ticket's row of ticket_history, which carries the ticket's own
-- status, times, org and priority beside its pending periods (no join on the key).
with resolved_pending as (
    select
        h.org, h.priority, h.created_at, h.resolved_at,
        coalesce(pending_business_micros(h.org, h.pending_from, h.pending_to,
            h.created_at, h.resolved_at), 0) as pending_us
    from ticket_history h
    where h.status in ('resolved', 'closed') and h.resolved_at >= $start and h.resolved_at < $end
),
ttr as (
    select
        local_month(p.resolved_at) as month,
        business_micros(p.org, p.created_at, p.resolved_at) - p.pending_us as ttr_us,
        s.ttr_s
    from resolved_pending p
    left join sla_targets s on s.priority = p.priority
),
ttr_month as (
    -- the median and p90 from one copy of the values (quantiles_cont)
    select
        month,
        count(*) as resolved,
        quantiles_cont(ttr_us / 3600000000.0, 0.5, 0.9) as ttr_q,
        sum(case when ttr_us <= ttr_s * 1000000 then 1 else 0 end) * 1.0 / count(*) as sla_ttr_rate
    from ttr
    group by month
),
owned_pending as (
    select
        h.org, h.priority, h.created_at, h.assigned_at,
        coalesce(pending_business_micros(h.org, h.pending_from, h.pending_to,
            h.created_at, h.assigned_at), 0) as pending_us
    from ticket_history h
    where h.created_at >= $start and h.created_at < $end and h.assigned_at is not null
),
tto as (
    select
        local_month(p.created_at) as month,
        business_micros(p.org, p.created_at, p.assigned_at) - p.pending_us as tto_us,
        s.tto_s
    from owned_pending p
    left join sla_targets s on s.priority = p.priority
),
tto_month as (
    select
        month,
        count(*) as owned,
        quantile_cont(tto_us / 3600000000.0, 0.5) as tto_median_bh,
        sum(case when tto_us <= tto_s * 1000000 then 1 else 0 end) * 1.0 / count(*) as sla_tto_rate
    from tto
    group by month
)
select
    coalesce(r.month, o.month) as month,
    coalesce(r.resolved, 0) as resolved,
    r.ttr_q[1] as median_bh,
    r.ttr_q[2] as p90_bh,
    r.sla_ttr_rate,
    coalesce(o.owned, 0) as owned,
    o.tto_median_bh,
    o.sla_tto_rate
from ttr_month r
full outer join tto_month o on o.month = r.month
order by month
