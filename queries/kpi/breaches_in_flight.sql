-- KPI breaches_in_flight: tickets still open at the end of the period ($end), and those
-- already past their SLA targets although not finished yet.
-- Open at $end: created before it, and not resolved, closed or canceled before it (from
-- the ticket's resolved_at, closed_at, or updated_at for a canceled ticket).
-- past_tto: not assigned before $end, and business time since created_at (minus pending
-- time) above the TTO target of the priority. past_ttr: business time since created_at
-- (minus pending time up to $end) above the TTR target.
-- Grain: one row per desk, priority. Parameters: $start (unused), $end.
-- Output: desk, priority, open_tickets, unowned, past_tto, past_ttr (counts; lower is
-- better).
with finished as (
    select
        t.source, t.ticket_id, t.org, t.desk, t.priority, t.created_at, t.assigned_at,
        coalesce(
            t.resolved_at,
            t.closed_at,
            case when t.status = 'canceled' then coalesce(t.updated_at, t.created_at) end
        ) as done_at
    from tickets t
    where t.created_at < $end
        -- done_at is resolved_at when there is one: a ticket resolved before the end is
        -- not open at the end (the same rows; the pages of such tickets, stored in
        -- resolved_at order, are skipped)
        and (t.resolved_at is null or t.resolved_at >= $end)
),
open_at_end as (
    select f.source, f.ticket_id, f.org, f.desk, f.priority, f.created_at, f.assigned_at
    from finished f
    where f.done_at is null or f.done_at >= $end
),
aged as (
    select
        o.org, o.desk, o.priority, o.created_at,
        case when o.assigned_at < $end then o.assigned_at end as assigned_at,
        -- pending periods (view pending_periods) clipped to [created_at, $end)
        coalesce(pending_business_micros(o.org, h.pending_from, h.pending_to,
            o.created_at, $end), 0) as pending_us
    from open_at_end o
    left join ticket_history h on h.source = o.source and h.ticket_id = o.ticket_id
        -- a ticket open at the end was created before it and has no settled_at, or one
        -- at or after the end (done_at is one of the times settled_at is the latest of):
        -- the same rows, and the row groups of tickets settled before the end, or
        -- created after it, are skipped
        and (h.settled_at is null or h.settled_at >= $end) and h.created_at < $end
),
measured as (
    select
        a.desk,
        a.priority,
        a.assigned_at,
        business_micros(a.org, a.created_at, $end) - a.pending_us as age_us,
        s.tto_s,
        s.ttr_s
    from aged a
    left join sla_targets s on s.priority = a.priority
)
select
    desk,
    priority,
    count(*) as open_tickets,
    sum(case when assigned_at is null then 1 else 0 end) as unowned,
    sum(case when assigned_at is null and age_us > tto_s * 1000000 then 1 else 0 end) as past_tto,
    sum(case when age_us > ttr_s * 1000000 then 1 else 0 end) as past_ttr
from measured
group by desk, priority
order by desk, priority
