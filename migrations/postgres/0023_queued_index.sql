-- Claims take queued rows in (next_attempt_at, id) order. The index on
-- (status, next_attempt_at) gave only the first half of that order, and
-- every delivery of a send falls due at the same moment, so each claim read
-- and sorted all of a send's queued rows to keep 500 of them: 27 ms per
-- claim at 20,000 readers, growing with the list. This index holds the
-- queued rows alone, in the claim's order, and a delivered row leaves it
-- instead of gaining an entry. The statements that read it name the status
-- 'queued' as a literal, which is what lets the planner use a partial index.
drop index outbox_due;
create index outbox_queued on outbox (next_attempt_at, id) where status = 'queued';

-- The same counts with one join of the rows before and after, not two.
create or replace function count_delivery_changes() returns trigger language plpgsql as $$
begin
    insert into delivery_counts (report_id, status, n)
        select a.report_id, change.status, sum(change.n)
            from after_rows a join before_rows b on b.id = a.id
            cross join lateral (values (a.status, 1), (b.status, -1)) as change (status, n)
            where a.kind = 'report' and a.status <> b.status
            group by a.report_id, change.status order by a.report_id, change.status
        on conflict (report_id, status) do update set n = delivery_counts.n + excluded.n;
    return null;
end $$;
