-- A million readers: the editors' pages read counts kept as the rows
-- change, instead of counting the list on every visit. The triggers run
-- once per statement over its changed rows, so a statement touching a
-- million rows updates each count once, not a million times.

-- Readers per status.
create table subscriber_counts (
    status text primary key,
    n bigint not null
);
insert into subscriber_counts (status, n)
    select status, count(*) from subscribers group by status;

create function count_subscribers_inserted() returns trigger language plpgsql as $$
begin
    insert into subscriber_counts (status, n)
        select status, count(*) from added group by status order by status
        on conflict (status) do update set n = subscriber_counts.n + excluded.n;
    return null;
end $$;

create function count_subscribers_updated() returns trigger language plpgsql as $$
begin
    insert into subscriber_counts (status, n)
        select status, sum(change) from (
            select a.status, 1 as change from after_rows a join before_rows b on b.id = a.id
                where a.status <> b.status
            union all
            select b.status, -1 from after_rows a join before_rows b on b.id = a.id
                where a.status <> b.status
        ) as changes group by status order by status
        on conflict (status) do update set n = subscriber_counts.n + excluded.n;
    return null;
end $$;

create function count_subscribers_deleted() returns trigger language plpgsql as $$
begin
    insert into subscriber_counts (status, n)
        select status, -count(*) from removed group by status order by status
        on conflict (status) do update set n = subscriber_counts.n + excluded.n;
    return null;
end $$;

create trigger subscriber_counts_insert after insert on subscribers
    referencing new table as added
    for each statement execute function count_subscribers_inserted();
create trigger subscriber_counts_update after update on subscribers
    referencing old table as before_rows new table as after_rows
    for each statement execute function count_subscribers_updated();
create trigger subscriber_counts_delete after delete on subscribers
    referencing old table as removed
    for each statement execute function count_subscribers_deleted();

-- A send's deliveries per status, as changes since the enqueue: every
-- delivery starts queued (sends.total of them), so the enqueue itself costs
-- nothing here and only status changes are counted.
create table delivery_counts (
    report_id bigint not null,
    status text not null,
    n bigint not null,
    primary key (report_id, status)
);
insert into delivery_counts (report_id, status, n)
    select report_id, status, sum(n) from (
        select report_id, status, count(*) as n from outbox
            where kind = 'report' and report_id is not null group by report_id, status
        union all
        select report_id, 'queued', -total from sends
    ) as changes group by report_id, status;

create function count_delivery_changes() returns trigger language plpgsql as $$
begin
    insert into delivery_counts (report_id, status, n)
        select report_id, status, sum(change) from (
            select a.report_id, a.status, 1 as change from after_rows a join before_rows b on b.id = a.id
                where a.kind = 'report' and a.status <> b.status
            union all
            select a.report_id, b.status, -1 from after_rows a join before_rows b on b.id = a.id
                where a.kind = 'report' and a.status <> b.status
        ) as changes group by report_id, status order by report_id, status
        on conflict (report_id, status) do update set n = delivery_counts.n + excluded.n;
    return null;
end $$;

create trigger delivery_counts_update after update on outbox
    referencing old table as before_rows new table as after_rows
    for each statement execute function count_delivery_changes();

-- Reader growth by week reads only the weeks shown.
create index subscribers_created on subscribers (created_at);
create index subscribers_confirmed on subscribers (confirmed_at);
create index subscribers_unsubscribed on subscribers (unsubscribed_at);

-- The send rate over the last minute reads only that minute.
create index outbox_report_sent on outbox (report_id, sent_at) where kind = 'report';
