-- Decision input m: the share of tickets created in the window that were transferred
-- between desks (a `transfer` event at any time), over the tickets of sources that keep
-- a history (a ticket without any event cannot show a transfer). Null when no source in
-- the window keeps one.
-- Grain: one row. Parameters: $start, $end (the window).
-- Output: tickets_with_history, transferred (counts), m.
with created as (
    select t.source, t.ticket_id
    from tickets t
    where t.created_at >= $start and t.created_at < $end
),
history as (
    select
        e.source,
        e.ticket_id,
        max(case when e.kind = 'transfer' then 1 else 0 end) as transferred
    from events e
    group by e.source, e.ticket_id
)
select
    count(h.ticket_id) as tickets_with_history,
    coalesce(sum(h.transferred), 0) as transferred,
    sum(h.transferred) * 1.0 / nullif(count(h.ticket_id), 0) as m
from created c
left join history h on h.source = c.source and h.ticket_id = c.ticket_id
