-- View ticket_history: what a ticket's status history says, once per ticket.
-- Grain: one row per ticket with at least one `status` event (source, ticket_id).
-- first_status_at: its first status event; first_resolved_at: its first transition to
-- `resolved` (null: never resolved); reopened: it has a status event from resolved or
-- closed to a status other than resolved, closed, canceled (at any time).
select
    e.source,
    e.ticket_id,
    min(e.at) as first_status_at,
    min(case when e.to_value = 'resolved' then e.at end) as first_resolved_at,
    max(case
        when e.from_value in ('resolved', 'closed')
            and e.to_value not in ('resolved', 'closed', 'canceled') then 1
        else 0
    end) = 1 as reopened
from events e
where e.kind = 'status'
group by e.source, e.ticket_id
