-- KPI satisfaction: tickets closed in the period (status closed now, closed_at in the
-- period) and their survey answers.
-- Grain: one row per local month of closed_at. Parameters: $start, $end.
-- Output: month, closed, answered (counts), answer_rate (answered ÷ closed),
-- satisfied_rate (share of answers >= 4; null without answers), mean_score (1..5).
-- Higher is better for every rate.
select
    local_month(t.closed_at) as month,
    count(*) as closed,
    count(t.satisfaction) as answered,
    count(t.satisfaction) * 1.0 / count(*) as answer_rate,
    sum(case when t.satisfaction >= 4 then 1 else 0 end) * 1.0 / nullif(count(t.satisfaction), 0) as satisfied_rate,
    sum(arrow_cast(t.satisfaction, 'Int64')) * 1.0 / nullif(count(t.satisfaction), 0) as mean_score
from tickets t
where t.status = 'closed' and t.closed_at >= $start and t.closed_at < $end
group by local_month(t.closed_at)
order by month
