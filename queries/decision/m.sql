-- Decision input m: the share of tickets created in the window that were transferred
-- between desks (a `transfer` event at any time), over the tickets of sources that keep
-- a history (a ticket without any event cannot show a transfer). Null when no source in
-- the window keeps one.
-- Grain: one row. Parameters: $start, $end (the window).
-- Output: tickets_with_history, transferred (counts), m.
-- Method: the view ticket_history (stored in the lake) says whether each ticket has an
-- event (first_event_at) and a transfer: the events are not read.
with created as (
    select t.source, t.ticket_id
    from tickets t
    where t.created_at >= $start and t.created_at < $end
)
select
    count(h.first_event_at) as tickets_with_history,
    count(case when h.transferred then 1 end) as transferred,
    count(case when h.transferred then 1 end) * 1.0 / nullif(count(h.first_event_at), 0) as m
from created c
left join ticket_history h on h.source = c.source and h.ticket_id = c.ticket_id
    -- the same filter on the row's copy of created_at: the same rows, and the row groups
    -- of other tickets are skipped
    and h.created_at >= $start and h.created_at < $end
