-- KPI history_coverage: how much of each source's data carries a status history, which
-- the history-based figures need (reopen rate, pending time, daily backlog by status).
-- Tickets created in the period; with_history = those with at least one `status` event
-- (at any time). A source whose tickets have no history has its tickets left out of
-- reopen_rate, and counted in backlog and TTR/TTO from the ticket's own dates only.
-- Grain: one row per source. Parameters: $start, $end.
-- Output: source, tickets, with_history, without_history (counts), history_rate (higher
-- is better).
with created as (
    select t.source, t.ticket_id
    from tickets t
    where t.created_at >= $start and t.created_at < $end
)
select
    c.source,
    count(*) as tickets,
    count(h.first_status_at) as with_history,
    count(*) - count(h.first_status_at) as without_history,
    count(h.first_status_at) * 1.0 / count(*) as history_rate
from created c
left join ticket_history h on h.source = c.source and h.ticket_id = c.ticket_id
    -- the same filter on the row's copy of created_at: the same rows, and the row groups
    -- of other tickets are skipped
    and h.created_at >= $start and h.created_at < $end
group by c.source
order by c.source
