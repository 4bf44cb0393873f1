-- KPI requalification: tickets created in the period that were transferred between
-- desks (at least one `transfer` event, at any time).
-- Grain: one row per local month of created_at. Parameters: $start, $end.
-- Output: month, tickets, transferred (counts), rate (lower is better).
-- Method: the view ticket_history (stored in the lake) has a row per ticket of `tickets`
-- with its created_at, and says whether it has a transfer: neither the events nor
-- `tickets` are read (a ticket only events name has no created_at).
select
    local_month(h.created_at) as month,
    count(*) as tickets,
    count(case when h.transferred then 1 end) as transferred,
    count(case when h.transferred then 1 end) * 1.0 / count(*) as rate
from ticket_history h
where h.created_at >= $start and h.created_at < $end
group by local_month(h.created_at)
order by month
