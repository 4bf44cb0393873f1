-- recurring_pairs over a period computed a few months at a time (its query says `Split`):
-- the rows of every chunk (table `chunks`, with the KPI's own columns) summed by service
-- and category, with the rate and the order of the KPI. Each incident of the period is
-- in exactly one chunk, and its recurrence looks 30 days back from it whatever the chunk.
select
    service,
    category,
    sum(incidents) as incidents,
    sum(recurring) as recurring,
    sum(recurring) * 1.0 / sum(incidents) as recurring_rate
from chunks
group by service, category
order by recurring desc, incidents desc, service, category nulls first
