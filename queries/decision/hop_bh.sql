-- Decision input hop_bh: the median business hours (in the school ticket's org calendar)
-- from a school ticket's creation to the creation of the group ticket forwarded from it,
-- over the group tickets created in the window. Null when none was forwarded.
-- Grain: one row. Parameters: $start, $end (the window).
-- Output: forwarded (count), hop_bh (exact median, business hours).
select
    count(*) as forwarded,
    quantile_cont(business_micros(s.org, s.created_at, greatest(s.created_at, g.created_at)) / 3600000000.0, 0.5) as hop_bh
from tickets g
join tickets s on g.origin = s.source || ':' || s.ticket_id
where g.desk = 'group' and g.origin is not null
    and g.created_at >= $start and g.created_at < $end
