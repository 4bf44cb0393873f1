-- View pending_periods: the periods tickets spent `pending` (waiting for the user or a
-- third party), whose business time does not count in time to own or time to resolve.
-- Grain: one row per `pending` status event (source, event_id): the ticket is pending
-- from `from_at` until its next status event `to_at` (null: still pending). Ties on `at`
-- are ordered by event_id.
-- Method: the periods are kept, per ticket, in the view ticket_history (stored in the
-- lake), which orders each ticket's status events once.
select
    h.source,
    h.ticket_id,
    unnest(h.pending_event_id) as event_id,
    unnest(h.pending_from) as from_at,
    unnest(h.pending_to) as to_at
from ticket_history h
where h.pending_from is not null
