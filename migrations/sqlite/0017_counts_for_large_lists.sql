-- A million readers: the editors' pages read counts kept as the rows
-- change, instead of counting the list on every visit.

-- Readers per status.
create table subscriber_counts (
    status text primary key,
    n bigint not null
);
insert into subscriber_counts (status, n)
    select status, count(*) from subscribers group by status;

create trigger subscriber_counts_insert after insert on subscribers
begin
    insert into subscriber_counts (status, n) values (new.status, 1)
        on conflict (status) do update set n = n + 1;
end;

create trigger subscriber_counts_update after update of status on subscribers
when old.status <> new.status
begin
    update subscriber_counts set n = n - 1 where status = old.status;
    insert into subscriber_counts (status, n) values (new.status, 1)
        on conflict (status) do update set n = n + 1;
end;

create trigger subscriber_counts_delete after delete on subscribers
begin
    update subscriber_counts set n = n - 1 where status = old.status;
end;

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

create trigger delivery_counts_update after update of status on outbox
when new.kind = 'report' and old.status <> new.status
begin
    insert into delivery_counts (report_id, status, n) values (new.report_id, old.status, -1)
        on conflict (report_id, status) do update set n = n - 1;
    insert into delivery_counts (report_id, status, n) values (new.report_id, new.status, 1)
        on conflict (report_id, status) do update set n = n + 1;
end;

-- Reader growth by week reads only the weeks shown.
create index subscribers_created on subscribers (created_at);
create index subscribers_confirmed on subscribers (confirmed_at);
create index subscribers_unsubscribed on subscribers (unsubscribed_at);

-- The send rate over the last minute reads only that minute.
create index outbox_report_sent on outbox (report_id, sent_at) where kind = 'report';
