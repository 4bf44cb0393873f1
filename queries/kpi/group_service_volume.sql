-- KPI group_service_volume: the decisive figure of the desk organisation: tickets created
-- in the period on group services (service_scope = 'group'), by arrival path:
--   direct          held by the group desk, not forwarded (origin is null)
--   forwarded       held by the group desk, forwarded from a school ticket (origin set)
--   kept_at_school  held by a school desk and never forwarded to the group desk
-- A school ticket that was forwarded is counted once, as its `forwarded` group ticket,
-- so that the three paths add up to distinct user requests.
-- Grain: one row per local month of created_at, org (the requester's), service, path.
-- Parameters: $start, $end. Output: month, org, service, path, tickets.
with created as (
    select t.source, t.ticket_id, local_month(t.created_at) as month, t.org, t.service, t.desk, t.origin
    from tickets t
    where t.created_at >= $start and t.created_at < $end and t.service_scope = 'group'
),
forwarded_from as (
    select distinct g.origin as school_ticket
    from tickets g
    where g.desk = 'group' and g.origin is not null
        -- a group ticket is forwarded from a school ticket after it was created: only
        -- those created from the period's start are read (a day earlier, for clocks of
        -- two desks' servers that differ)
        and g.created_at >= $start - interval '1 day'
),
paths as (
    select
        c.month,
        c.org,
        c.service,
        case
            when c.desk = 'school' then 'kept_at_school'
            when c.origin is null then 'direct'
            else 'forwarded'
        end as path
    -- the forwarded school tickets first: the engine keeps the first side of a join in
    -- memory, and they are far fewer than the period's tickets. Named school_ticket, not
    -- origin: DataFusion 55 may push a filter on a column through a join to the other
    -- side's column of the same name (apache/datafusion#20213)
    from forwarded_from f
    right join created c on f.school_ticket = c.source || ':' || c.ticket_id
    where c.desk = 'group' or f.school_ticket is null
)
select month, org, service, path, count(*) as tickets
from paths
group by month, org, service, path
order by month, org, service, path
