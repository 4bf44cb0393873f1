-- KPI requalification: tickets created in the period that were transferred between
-- desks (at least one `transfer` event, at any time).
-- Grain: one row per local month of created_at. Parameters: $start, $end.
-- Output: month, tickets, transferred (counts), rate (lower is better).
-- Method: the view ticket_history (stored in the lake) says, once per ticket,
-- whether it has a transfer: the events are not read.
with created as (
    select t.source, t.ticket_id, local_month(t.created_at) as month
    from tickets t
    where t.created_at >= $start and t.created_at < $end
)
select
    c.month,
    count(*) as tickets,
    count(case when h.transferred then 1 end) as transferred,
    count(case when h.transferred then 1 end) * 1.0 / count(*) as rate
from created c
left join ticket_history h on h.source = c.source and h.ticket_id = c.ticket_id
    -- the same filter on the row's copy of created_at: the same rows, and the row groups
    -- of other tickets are skipped
    and h.created_at >= $start and h.created_at < $end
group by c.month
order by c.month
