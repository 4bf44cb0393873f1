-- KPI service_level: the month's headline service figures over all desks and priorities.
-- Resolution side: tickets resolved in the period (status resolved or closed now,
-- resolved_at in the period), business TTR as in resolution_time (pending time removed).
-- Ownership side: tickets created in the period and assigned, business TTO as in
-- time_to_own. Medians and p90 are exact over all the month's tickets (they cannot be
-- derived from the per-desk, per-priority medians of those KPIs).
-- Grain: one row per local month (of resolved_at for the resolution side, of created_at
-- for the ownership side). Parameters: $start, $end.
-- Output: month, resolved (count), median_bh, p90_bh (business hours; lower is better),
-- sla_ttr_rate (share within the TTR target of the priority; higher is better), owned
-- (count), tto_median_bh (business hours), sla_tto_rate (share within the TTO target).
with resolved as (
    select t.source, t.ticket_id, t.org, t.priority, t.created_at, t.resolved_at
    from tickets t
    where t.status in ('resolved', 'closed') and t.resolved_at >= $start and t.resolved_at < $end
),
resolved_pending as (
    select
        r.org, r.priority, r.created_at, r.resolved_at,
        coalesce(pending_business_micros(r.org, h.pending_from, h.pending_to,
            r.created_at, r.resolved_at), 0) as pending_us
    from resolved r
    left join ticket_history h on h.source = r.source and h.ticket_id = r.ticket_id
        -- the same filter on the row's copy of resolved_at: the same rows, and the row
        -- groups of other tickets are skipped
        and h.resolved_at >= $start and h.resolved_at < $end
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
    select
        month,
        count(*) as resolved,
        quantile_cont(ttr_us / 3600000000.0, 0.5) as median_bh,
        quantile_cont(ttr_us / 3600000000.0, 0.9) as p90_bh,
        sum(case when ttr_us <= ttr_s * 1000000 then 1 else 0 end) * 1.0 / count(*) as sla_ttr_rate
    from ttr
    group by month
),
owned as (
    select t.source, t.ticket_id, t.org, t.priority, t.created_at, t.assigned_at
    from tickets t
    where t.created_at >= $start and t.created_at < $end and t.assigned_at is not null
),
owned_pending as (
    select
        o.org, o.priority, o.created_at, o.assigned_at,
        coalesce(pending_business_micros(o.org, h.pending_from, h.pending_to,
            o.created_at, o.assigned_at), 0) as pending_us
    from owned o
    left join ticket_history h on h.source = o.source and h.ticket_id = o.ticket_id
        -- the same filter on the row's copy of created_at: the same rows, and the row
        -- groups of other tickets are skipped
        and h.created_at >= $start and h.created_at < $end
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
    r.median_bh,
    r.p90_bh,
    r.sla_ttr_rate,
    coalesce(o.owned, 0) as owned,
    o.tto_median_bh,
    o.sla_tto_rate
from ttr_month r
full outer join tto_month o on o.month = r.month
order by month
