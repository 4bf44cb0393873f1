-- Decision input m: the share of tickets created in the window that were transferred
-- between desks (a `transfer` event at any time), over the tickets of sources that keep
-- a history (a ticket without any event cannot show a transfer). Null when no source in
-- the window keeps one.
-- Grain: one row. Parameters: $start, $end (the window).
-- Output: tickets_with_history, transferred (counts), m.
-- Method: the view ticket_history (stored in the lake) has a row per ticket of `tickets`
-- with its created_at, and says whether it has an event (first_event_at) and a transfer:
-- neither the events nor `tickets` are read (a ticket only events name has no
-- created_at).
select
    count(h.first_event_at) as tickets_with_history,
    count(case when h.transferred then 1 end) as transferred,
    count(case when h.transferred then 1 end) * 1.0 / nullif(count(h.first_event_at), 0) as m
from ticket_history h
where h.created_at >= $start and h.created_at < $end
