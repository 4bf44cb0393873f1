-- KPI requalification: tickets created in the period that were transferred between
-- desks (at least one `transfer` event, at any time).
-- Grain: one row per local month of created_at. Parameters: $start, $end.
-- Output: month, tickets, transferred (counts), rate (lower is better).
with created as (
    select t.source, t.ticket_id, local_month(t.created_at) as month
    from tickets t
    where t.created_at >= $start and t.created_at < $end
),
transferred as (
    select distinct e.source, e.ticket_id from events e where e.kind = 'transfer'
)
select
    c.month,
    count(*) as tickets,
    count(x.ticket_id) as transferred,
    count(x.ticket_id) * 1.0 / count(*) as rate
from created c
left join transferred x on x.source = c.source and x.ticket_id = c.ticket_id
group by c.month
order by c.month
