-- View status_intervals: the status history as intervals.
-- Grain: one row per status event (source, event_id): the ticket is in `status` from
-- `from_at` until `next_at`, the instant of its next status event (null: still so).
-- Ties on `at` are ordered by event_id (DESIGN.md: history ordered by at, then event_id).
select
    e.source,
    e.ticket_id,
    e.event_id,
    e.at as from_at,
    lead(e.at) over (partition by e.source, e.ticket_id order by e.at, e.event_id) as next_at,
    e.from_value,
    e.to_value as status
from events e
where e.kind = 'status'
