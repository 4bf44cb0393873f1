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
-- Read from the ticket's row of ticket_history, which carries the ticket's own status,
-- times, org, desk and priority beside its pending periods (no join on the key).
with finished as (
    select
        h.org, h.desk, h.priority, h.created_at, h.assigned_at, h.pending_from, h.pending_to,
        coalesce(
            h.resolved_at,
            h.closed_at,
            case when h.status = 'canceled' then coalesce(h.updated_at, h.created_at) end
        ) as done_at
    from ticket_history h
    where h.created_at < $end
        -- done_at is resolved_at when there is one: a ticket resolved before the end is
        -- not open at the end (the same rows; the pages of such tickets, stored in
        -- resolved_at order, are skipped)
        and (h.resolved_at is null or h.resolved_at >= $end)
        -- a ticket open at the end has no settled_at, or one at or after the end
        -- (done_at is one of the times settled_at is the latest of): the same rows, and
        -- the pages of tickets settled before the end are skipped
        and (h.settled_at is null or h.settled_at >= $end)
),
aged as (
    select
        f.org, f.desk, f.priority, f.created_at,
        case when f.assigned_at < $end then f.assigned_at end as assigned_at,
        -- pending periods (view pending_periods) clipped to [created_at, $end)
        coalesce(pending_business_micros(f.org, f.pending_from, f.pending_to,
            f.created_at, $end), 0) as pending_us
    from finished f
    where f.done_at is null or f.done_at >= $end
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
