-- Decision input hop_bh: the median business hours (in the school ticket's org calendar)
-- from a school ticket's creation to the creation of the group ticket forwarded from it,
-- over the group tickets created in the window. Null when none was forwarded.
-- Grain: one row. Parameters: $start, $end (the window).
-- Output: forwarded (count), hop_bh (exact median, business hours).
-- origin is 'source:ticket_id'; a source id holds no ':' (the configuration refuses
-- one), so the join is on the two columns split out of it at its first ':', rather than
-- on a string built for every ticket of the lake
select
    count(*) as forwarded,
    quantile_cont(business_micros(s.org, s.created_at, greatest(s.created_at, g.created_at)) / 3600000000.0, 0.5) as hop_bh
from tickets g
join tickets s
    on s.source = split_part(g.origin, ':', 1)
    and s.ticket_id = substr(g.origin, strpos(g.origin, ':') + 1)
where g.desk = 'group' and strpos(g.origin, ':') > 0
    and g.created_at >= $start and g.created_at < $end
