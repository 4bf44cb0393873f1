-- KPI volume: tickets created in the period.
-- Grain: one row per local month of created_at, org, desk, service, service_scope, kind, channel.
-- Parameters: $start, $end (UTC instants of local month starts; period = [$start, $end)).
-- Output: month, org, desk, service, service_scope, kind, channel, tickets (count).
-- Higher is neither better nor worse: it is the load.
with created as (
    select local_month(t.created_at) as month, t.org, t.desk, t.service, t.service_scope, t.kind, t.channel
    from tickets t
    where t.created_at >= $start and t.created_at < $end
)
select month, org, desk, service, service_scope, kind, channel, count(*) as tickets
from created
group by month, org, desk, service, service_scope, kind, channel
order by month, org, desk, service, service_scope, kind, channel
