-- Decision input G_i and S_i: tickets created in the window by the requester's org, on
-- group services (G) and on school services (S). A school ticket forwarded to the group
-- desk is counted once, as its group ticket (the paths of group_service_volume), so G
-- counts user requests, whatever desk took them.
-- Grain: one row per org. Parameters: $start, $end (the window).
-- Output: org, group_tickets, school_tickets (counts over the whole window; the model
-- divides by the window's months).
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
created as (
    select t.org, t.service_scope
    -- the forwarded school tickets first: the engine keeps the first side of a join in
    -- memory, and they are far fewer than the window's tickets. Named school_*, not
    -- origin, source or ticket_id: DataFusion 55 may push a filter on a column through a
    -- join to the other side's column of the same name (apache/datafusion#20213)
    from forwarded_from f
    right join tickets t on f.school_source = t.source and f.school_ticket = t.ticket_id
    where t.created_at >= $start and t.created_at < $end
        and (t.desk = 'group' or t.service_scope <> 'group' or f.school_ticket is null)
)
select
    org,
    sum(case when service_scope = 'group' then 1 else 0 end) as group_tickets,
    sum(case when service_scope = 'school' then 1 else 0 end) as school_tickets
from created
group by org
order by org
