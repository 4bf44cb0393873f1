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
-- Method: each open span is a range of days [from_day, to_day); it adds +1 on its first
-- day and −1 on the day it ends, and a running sum gives the count of every day. The
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
span_ends as (
    -- as ranges of local days [from, to) (2000000000: open-ended); an interval that
    -- starts after the period's end is left out, one that ends after it is cut by it
    -- either way
    select
        local_day(created_at) as created_day,
        local_day(from_at) as from_day,
        coalesce(local_day(to_at), 2000000000) as to_day
    from spans
    where from_at < $end
),
-- per open span, the part of it spent in each age bucket (days since creation 0–7,
-- 8–30, 31–90, over 90): bucket b covers [created_day + lo_b, created_day + hi_b)
bucket_spans as (
    select
        unnest(make_array(1, 2, 3, 4)) as bucket,
        unnest(make_array(
            greatest(o.from_day, o.created_day),
            greatest(o.from_day, o.created_day + 8),
            greatest(o.from_day, o.created_day + 31),
            greatest(o.from_day, o.created_day + 91))) as s,
        unnest(make_array(
            least(o.to_day, o.created_day + 8),
            least(o.to_day, o.created_day + 31),
            least(o.to_day, o.created_day + 91),
            o.to_day)) as e
    from span_ends o
    -- a span over before the period adds +1 and −1 before it: nothing
    where o.to_day > local_day($start) and o.from_day < local_day($end)
),
per_day as (
    -- +1 on a span's first day, −1 on the day after its last; days before the period are
    -- gathered on the day before it, the baseline of the running sum
    select bucket, greatest(day, local_day($start) - 1) as day, sum(delta) as n
    from (
        select bucket, unnest(make_array(s, e)) as day, unnest(make_array(1, -1)) as delta
        from bucket_spans
        where s < e
    ) d
    where day < local_day($end)
    group by bucket, greatest(day, local_day($start) - 1)
),
buckets as (
    select * from (values (1), (2), (3), (4)) as b(bucket)
),
days as (
    select unnest(range(local_day($start) - 1, local_day($end))) as day
),
counts as (
    select
        g.day,
        b.bucket,
        sum(coalesce(p.n, 0)) over (
            partition by b.bucket order by g.day rows between unbounded preceding and current row
        ) as open_count
    from days g
    cross join buckets b
    left join per_day p on p.bucket = b.bucket and p.day = g.day
)
select
    arrow_cast(arrow_cast(day, 'Int32'), 'Date32') as day,
    sum(open_count) as open_tickets,
    sum(case when bucket = 1 then open_count end) as age_0_7,
    sum(case when bucket = 2 then open_count end) as age_8_30,
    sum(case when bucket = 3 then open_count end) as age_31_90,
    sum(case when bucket = 4 then open_count end) as age_over_90
from counts
where day >= local_day($start)
group by day
order by day
