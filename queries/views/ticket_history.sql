-- View ticket_history: what a ticket's status history says, once per ticket.
-- Grain: one row per ticket with at least one `status` event (source, ticket_id).
-- first_status_at: its first status event; first_resolved_at: its first transition to
-- `resolved` (null: never resolved); reopened: it has a status event from resolved or
-- closed to a status other than resolved, closed, canceled (at any time).
-- open_from, open_to: the intervals its history says it was open, in order: from each
-- status event to a status other than resolved, closed, canceled until the next status
-- event (null: still so); null when there is none. pending_event_id, pending_from,
-- pending_to: likewise the periods it spent `pending`, with the id of the status event
-- that began each (the view pending_periods lists them). Ties on `at` are ordered by
-- event_id.
with intervals as (
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
)
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
