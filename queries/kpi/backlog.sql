-- KPI backlog: open tickets at the end of each local day of the period, and their age.
-- A ticket is open at the end of day d when its status after every event before the next
-- local midnight is not resolved, closed or canceled (an event exactly at midnight belongs
-- to the next day); before its first status event a ticket is `new`. A ticket without any
-- status event is open from created_at until resolved_at (or closed_at, or updated_at when
-- it was canceled), or still open when its status is open.
-- Age at the end of day d = d − the local day of created_at, in days; buckets 0–7, 8–30,
-- 31–90 and over 90 days.
-- Grain: one row per local day. Parameters: $start, $end.
-- Output: day, open_tickets, age_0_7, age_8_30, age_31_90, age_over_90 (counts; lower is better).
-- Method: each open span is a range of local days [from_day, to_day) of a ticket created
-- on created_day; open_by_age(created_day, from_day, to_day, first day, end day, 8, 31,
-- 91) counts, for each day of the period, the spans that cover it, in all and by age
-- (buckets [0, 8), [8, 31), [31, 91), [91, ∞) days; a day before the ticket's creation
-- has no age and is not counted): each span adds +1 on its first day and −1 on the day
-- it ends, and a running sum gives the count of every day (`ticketlake schema`). The
-- view ticket_history (stored in the lake) has a row per ticket, with the open intervals
-- of its status history and its own status and times: neither the events nor `tickets`
-- are read.
with history as (
    -- only tickets that can be open in the period: created before its end, and not
    -- already finished before its start (updated_at is the ticket's last change). Every
    -- open span of each as instants [from, to) (to null: open-ended; from null: none), as
    -- two lists: (b) before its first status event the ticket was new, then (a) the open
    -- intervals of its history; (c) a ticket without history in the period (none, or
    -- none before its end: a later event cannot change a day of it) is open from its
    -- creation until it was finished (resolved_at, else closed_at, else updated_at)
    select
        h.created_at,
        case
            when h.first_status_at is null or h.first_status_at >= $end
                then make_array(h.created_at)
            else array_prepend(
                case when h.created_at < h.first_status_at then h.created_at end, h.open_from)
        end as span_from,
        case
            when h.first_status_at is null or h.first_status_at >= $end then make_array(
                case when h.status in ('resolved', 'closed', 'canceled')
                    then coalesce(h.resolved_at, h.closed_at, h.updated_at, h.created_at) end)
            else array_prepend(h.first_status_at, h.open_to)
        end as span_to
    from ticket_history h
    where h.created_at < $end
        and (h.status not in ('resolved', 'closed', 'canceled') or h.updated_at is null
            or h.updated_at >= $start)
        -- implied by the line above (a ticket finished with an updated_at has a
        -- settled_at, at or after it): the same rows, and the pages of tickets settled
        -- before the period are skipped
        and (h.settled_at is null or h.settled_at >= $start)
),
spans as (
    select created_at, unnest(span_from) as from_at, unnest(span_to) as to_at
    from history
),
days as (
    -- an interval that starts after the period's end is left out (to_day null:
    -- open-ended)
    select unnest(open_by_age(
        local_day(created_at), local_day(from_at), local_day(to_at),
        local_day($start), local_day($end), 8, 31, 91)) as d
    from spans
    where from_at < $end
)
select
    d['day'] as day,
    d['open_tickets'] as open_tickets,
    d['by_age'][1] as age_0_7,
    d['by_age'][2] as age_8_30,
    d['by_age'][3] as age_31_90,
    d['by_age'][4] as age_over_90
from days
order by day
