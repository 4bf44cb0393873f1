-- KPI history_coverage: how much of each source's data carries a status history, which
-- the history-based figures need (reopen rate, pending time, daily backlog by status).
-- Tickets created in the period; with_history = those with at least one `status` event
-- (at any time). A source whose tickets have no history has its tickets left out of
-- reopen_rate, and counted in backlog and TTR/TTO from the ticket's own dates only.
-- Grain: one row per source. Parameters: $start, $end.
-- Output: source, tickets, with_history, without_history (counts), history_rate (higher
-- is better).
-- The view ticket_history has a row per ticket of `tickets`, with its created_at (and
-- rows for tickets that only events name, whose created_at is null): its rows of the
-- period are the period's tickets, and no join of `tickets` on its key is needed.
select
    h.source,
    count(*) as tickets,
    count(h.first_status_at) as with_history,
    count(*) - count(h.first_status_at) as without_history,
    count(h.first_status_at) * 1.0 / count(*) as history_rate
from ticket_history h
where h.created_at >= $start and h.created_at < $end
group by h.source
order by h.source
