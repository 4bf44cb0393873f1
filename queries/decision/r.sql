-- Decision input r: of the group-service requests that reached a school desk first, the
-- share kept there (never forwarded to the group desk): kept ÷ (kept + forwarded), with
-- the paths of group_service_volume. Null when no such request exists.
-- Grain: one row. Parameters: $start, $end (the window).
-- Output: kept, forwarded (counts), r.
with forwarded_from as (
    -- origin is 'source:ticket_id' and a source id holds no ':' (the configuration
    -- refuses one): the join is on the two columns split at its first ':', rather than
    -- on a string built for each ticket of the window
    select distinct
        split_part(g.origin, ':', 1) as school_source,
        substr(g.origin, strpos(g.origin, ':') + 1) as school_ticket
    from tickets g
    where g.desk = 'group' and strpos(g.origin, ':') > 0
        -- a group ticket is forwarded from a school ticket after it was created: only
        -- those created from the period's start are read (a day earlier, for clocks of
        -- two desks' servers that differ)
        and g.created_at >= $start - interval '1 day'
),
paths as (
    select
        case
            when t.desk = 'school' and f.school_ticket is null then 'kept'
            when t.desk = 'group' and t.origin is not null then 'forwarded'
        end as path
    -- the forwarded school tickets first: the engine keeps the first side of a join in
    -- memory, and they are far fewer than the window's tickets. Named school_*, not
    -- origin, source or ticket_id: DataFusion 55 may push a filter on a column through a
    -- join to the other side's column of the same name (apache/datafusion#20213)
    from forwarded_from f
    right join tickets t on f.school_source = t.source and f.school_ticket = t.ticket_id
    where t.created_at >= $start and t.created_at < $end and t.service_scope = 'group'
)
select
    sum(case when path = 'kept' then 1 else 0 end) as kept,
    sum(case when path = 'forwarded' then 1 else 0 end) as forwarded,
    sum(case when path = 'kept' then 1 else 0 end) * 1.0
        / nullif(sum(case when path in ('kept', 'forwarded') then 1 else 0 end), 0) as r
from paths
