-- View ticket_history: what a ticket's history says, once per ticket, beside the
-- ticket's own state.
-- Grain: one row per ticket of `tickets`, and per ticket that only events name (source,
-- ticket_id).
-- first_status_at: its first status event (null: it has none, and then so are the
-- status columns below); first_resolved_at: its first transition to `resolved` (null:
-- never resolved); reopened: it has a status event from resolved or closed to a status
-- other than resolved, closed, canceled (at any time).
-- open_from, open_to: the intervals its history says it was open, in order: from each
-- status event to a status other than resolved, closed, canceled until the next status
-- event (null: still so); null when there is none. pending_event_id, pending_from,
-- pending_to: likewise the periods it spent `pending`, with the id of the status event
-- that began each (the view pending_periods lists them). Ties on `at` are ordered by
-- event_id.
-- created_at, resolved_at: the ticket's own (as in `tickets`; null when `tickets` has no
-- such ticket). settled_at: null while the ticket's fields leave it possibly open (its
-- status is not resolved, closed or canceled; it has no updated_at; or it is resolved or
-- closed without resolved_at and closed_at); otherwise the latest of its created_at,
-- resolved_at, closed_at and updated_at. These three let a KPI of one period read only
-- the rows of the tickets it can concern: the stored rows are grouped by the ticket's
-- month of creation (its `tickets` partition) and ordered within it by resolved_at, then
-- settled_at, so a filter on any of the three skips row groups and pages.
-- transferred: it has a `transfer` event (at any time); first_event_at: its first event
-- of any kind (null: it has none).
-- status, closed_at, updated_at, org, desk, priority, assigned_at: the ticket's own (as
-- in `tickets`), so that the backlog and the KPIs of resolution and ownership times read
-- this view alone, with no join of `tickets` on its key.
with evented as (
    select
        e.source,
        e.ticket_id,
        min(e.at) as first_event_at,
        max(case when e.kind = 'transfer' then 1 else 0 end) = 1 as transferred
    from events e
    group by e.source, e.ticket_id
),
intervals as (
    select
        e.source,
        e.ticket_id,
        e.event_id,
        e.at,
        e.from_value,
        e.to_value,
        lead(e.at) over (partition by e.source, e.ticket_id order by e.at, e.event_id) as next_at
    from events e
    where e.kind = 'status'
),
statuses as (
    select
        i.source,
        i.ticket_id,
        min(i.at) as first_status_at,
        min(case when i.to_value = 'resolved' then i.at end) as first_resolved_at,
        max(case
            when i.from_value in ('resolved', 'closed')
                and i.to_value not in ('resolved', 'closed', 'canceled') then 1
            else 0
        end) = 1 as reopened,
        array_agg(i.at order by i.at, i.event_id)
            filter (where i.to_value not in ('resolved', 'closed', 'canceled')) as open_from,
        array_agg(i.next_at order by i.at, i.event_id)
            filter (where i.to_value not in ('resolved', 'closed', 'canceled')) as open_to,
        array_agg(i.event_id order by i.at, i.event_id)
            filter (where i.to_value = 'pending') as pending_event_id,
        array_agg(i.at order by i.at, i.event_id)
            filter (where i.to_value = 'pending') as pending_from,
        array_agg(i.next_at order by i.at, i.event_id)
            filter (where i.to_value = 'pending') as pending_to
    from intervals i
    group by i.source, i.ticket_id
),
-- every ticket, once: a filter on `source` above reaches the scans of both tables (a
-- full join of the two would keep it above the join)
ticket_keys as (
    select t.source, t.ticket_id from tickets t
    union
    select x.source, x.ticket_id from evented x
)
select
    k.source,
    k.ticket_id,
    s.first_status_at,
    s.first_resolved_at,
    s.reopened,
    s.open_from,
    s.open_to,
    s.pending_event_id,
    s.pending_from,
    s.pending_to,
    t.created_at,
    t.resolved_at,
    case
        when t.status is null
            or t.status not in ('resolved', 'closed', 'canceled')
            or t.updated_at is null
            or (t.resolved_at is null and t.closed_at is null and t.status <> 'canceled')
            then null
        else greatest(t.created_at, t.resolved_at, t.closed_at, t.updated_at)
    end as settled_at,
    coalesce(x.transferred, false) as transferred,
    x.first_event_at,
    t.status,
    t.closed_at,
    t.updated_at,
    t.org,
    t.desk,
    t.priority,
    t.assigned_at
from ticket_keys k
left join tickets t on t.source = k.source and t.ticket_id = k.ticket_id
left join evented x on x.source = k.source and x.ticket_id = k.ticket_id
left join statuses s on s.source = k.source and s.ticket_id = k.ticket_id
