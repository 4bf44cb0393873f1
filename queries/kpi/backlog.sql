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
-- day and −1 on the day it ends, and a running sum gives the count of every day.
with bounds as (
    select local_day($start) as first_day, local_day($end) as end_day
),
first_event as (
    select source, ticket_id, min(from_at) as first_at
    from status_intervals
    group by source, ticket_id
),
open_spans as (
    select local_day(t.created_at) as created_day, local_day(s.from_at) as from_day, local_day(s.next_at) as to_day
    from status_intervals s
    join tickets t on t.source = s.source and t.ticket_id = s.ticket_id
    where s.status not in ('resolved', 'closed', 'canceled')
    union all
    select local_day(t.created_at), local_day(t.created_at), local_day(f.first_at)
    from tickets t
    join first_event f on f.source = t.source and f.ticket_id = t.ticket_id
    where t.created_at < f.first_at
    union all
    select local_day(t.created_at), local_day(t.created_at),
        case when t.status in ('resolved', 'closed', 'canceled')
            then local_day(coalesce(t.resolved_at, t.closed_at, t.updated_at, t.created_at))
        end
    from tickets t
    left join first_event f on f.source = t.source and f.ticket_id = t.ticket_id
    where f.ticket_id is null
),
buckets as (
    select * from (values (1, 0, 8), (2, 8, 31), (3, 31, 91), (4, 91, 1000000000)) as b(bucket, lo, hi)
),
spans as (
    select
        b.bucket,
        greatest(o.from_day, o.created_day + b.lo) as s,
        least(coalesce(o.to_day, 2000000000), o.created_day + b.hi) as e
    from open_spans o
    cross join buckets b
),
deltas as (
    select bucket, s as day, 1 as delta from spans where s < e
    union all
    select bucket, e as day, -1 as delta from spans where s < e and e < 2000000000
),
before_period as (
    select d.bucket, sum(d.delta) as n
    from deltas d, bounds
    where d.day < bounds.first_day
    group by d.bucket
),
in_period as (
    select d.bucket, d.day, sum(d.delta) as n
    from deltas d, bounds
    where d.day >= bounds.first_day and d.day < bounds.end_day
    group by d.bucket, d.day
),
days as (
    select unnest(range(first_day, end_day)) as day from bounds
),
counts as (
    select
        g.day,
        b.bucket,
        coalesce(bp.n, 0) + sum(coalesce(ip.n, 0)) over (
            partition by b.bucket order by g.day rows between unbounded preceding and current row
        ) as open_count
    from days g
    cross join buckets b
    left join in_period ip on ip.bucket = b.bucket and ip.day = g.day
    left join before_period bp on bp.bucket = b.bucket
)
select
    arrow_cast(arrow_cast(day, 'Int32'), 'Date32') as day,
    sum(open_count) as open_tickets,
    sum(case when bucket = 1 then open_count end) as age_0_7,
    sum(case when bucket = 2 then open_count end) as age_8_30,
    sum(case when bucket = 3 then open_count end) as age_31_90,
    sum(case when bucket = 4 then open_count end) as age_over_90
from counts
group by day
order by day
