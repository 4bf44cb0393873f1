-- View ticket_times: each ticket with its times to own and to resolve.
-- Grain: one row per ticket (source, ticket_id).
-- Columns: the ticket's columns used by KPIs, plus
--   ttr_wall_us  wall-clock µs from created_at to resolved_at (null when unresolved)
--   ttr_us       business µs from created_at to resolved_at in the org's calendar, minus
--                the business µs spent in `pending` within that span
--   tto_us       the same from created_at to assigned_at
--   ttr_h, ttr_bh, tto_bh  the same in hours (wall, business, business)
--   tto_target_s, ttr_target_s  the SLA targets of the ticket's priority (seconds)
-- Times are whole microseconds (Int64) so that sums are exact and KPI output does not
-- depend on the order in which parallel aggregation adds them up.
with pending as (
    select source, ticket_id, from_at, next_at
    from status_intervals
    where status = 'pending'
),
pending_overlap as (
    select
        t.source,
        t.ticket_id,
        sum(case when t.resolved_at is not null then
            business_micros(t.org, greatest(p.from_at, t.created_at),
                            least(coalesce(p.next_at, t.resolved_at), t.resolved_at))
        end) as pending_ttr_us,
        sum(case when t.assigned_at is not null then
            business_micros(t.org, greatest(p.from_at, t.created_at),
                            least(coalesce(p.next_at, t.assigned_at), t.assigned_at))
        end) as pending_tto_us
    from tickets t
    join pending p on p.source = t.source and p.ticket_id = t.ticket_id
    group by t.source, t.ticket_id
),
times as (
    select
        t.source,
        t.ticket_id,
        t.org,
        t.desk,
        t.service,
        t.service_scope,
        t.kind,
        t.priority,
        t.level,
        t.status,
        t.created_at,
        t.assigned_at,
        t.resolved_at,
        t.closed_at,
        t.effort_minutes,
        arrow_cast(t.resolved_at, 'Int64') - arrow_cast(t.created_at, 'Int64') as ttr_wall_us,
        business_micros(t.org, t.created_at, t.resolved_at) - coalesce(po.pending_ttr_us, 0) as ttr_us,
        business_micros(t.org, t.created_at, t.assigned_at) - coalesce(po.pending_tto_us, 0) as tto_us,
        s.tto_s as tto_target_s,
        s.ttr_s as ttr_target_s
    from tickets t
    left join pending_overlap po on po.source = t.source and po.ticket_id = t.ticket_id
    left join sla_targets s on s.priority = t.priority
)
select
    times.*,
    ttr_wall_us / 3600000000.0 as ttr_h,
    ttr_us / 3600000000.0 as ttr_bh,
    tto_us / 3600000000.0 as tto_bh
from times
