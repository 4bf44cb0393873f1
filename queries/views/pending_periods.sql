-- View pending_periods: the periods tickets spent `pending` (waiting for the user or a
-- third party), whose business time does not count in time to own or time to resolve.
-- Grain: one row per `pending` status event (source, event_id): the ticket is pending
-- from `from_at` until its next status event `to_at` (null: still pending). Ties on `at`
-- are ordered by event_id.
select
    p.source,
    p.ticket_id,
    p.event_id,
    p.at as from_at,
    min(n.at) as to_at
from events p
left join events n
    on n.source = p.source and n.ticket_id = p.ticket_id and n.kind = 'status'
    and (n.at > p.at or (n.at = p.at and n.event_id > p.event_id))
where p.kind = 'status' and p.to_value = 'pending'
group by p.source, p.ticket_id, p.event_id, p.at
