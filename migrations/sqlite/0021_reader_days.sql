-- Reader growth per day, kept as readers sign up, confirm, leave or are
-- erased, so the overview reads a few dozen rows instead of every reader of
-- the last twelve weeks. A day is a UTC day: Unix milliseconds / 86400000.
create table reader_days (
    day bigint primary key,
    signed_up bigint not null default 0,
    confirmed bigint not null default 0,
    unsubscribed bigint not null default 0
);
insert into reader_days (day, signed_up, confirmed, unsubscribed)
    select day, sum(s), sum(c), sum(u) from (
        select created_at / 86400000 as day, 1 as s, 0 as c, 0 as u from subscribers
        union all
        select confirmed_at / 86400000, 0, 1, 0 from subscribers where confirmed_at is not null
        union all
        select unsubscribed_at / 86400000, 0, 0, 1 from subscribers where unsubscribed_at is not null
    ) as days group by day;

create trigger reader_days_insert after insert on subscribers
begin
    insert into reader_days (day, signed_up) values (new.created_at / 86400000, 1)
        on conflict (day) do update set signed_up = signed_up + 1;
    insert into reader_days (day, confirmed)
        select new.confirmed_at / 86400000, 1 where new.confirmed_at is not null
        on conflict (day) do update set confirmed = confirmed + 1;
    insert into reader_days (day, unsubscribed)
        select new.unsubscribed_at / 86400000, 1 where new.unsubscribed_at is not null
        on conflict (day) do update set unsubscribed = unsubscribed + 1;
end;

create trigger reader_days_confirmed after update of confirmed_at on subscribers
when old.confirmed_at is not new.confirmed_at
begin
    update reader_days set confirmed = confirmed - 1
        where old.confirmed_at is not null and day = old.confirmed_at / 86400000;
    insert into reader_days (day, confirmed)
        select new.confirmed_at / 86400000, 1 where new.confirmed_at is not null
        on conflict (day) do update set confirmed = confirmed + 1;
end;

create trigger reader_days_unsubscribed after update of unsubscribed_at on subscribers
when old.unsubscribed_at is not new.unsubscribed_at
begin
    update reader_days set unsubscribed = unsubscribed - 1
        where old.unsubscribed_at is not null and day = old.unsubscribed_at / 86400000;
    insert into reader_days (day, unsubscribed)
        select new.unsubscribed_at / 86400000, 1 where new.unsubscribed_at is not null
        on conflict (day) do update set unsubscribed = unsubscribed + 1;
end;

create trigger reader_days_created after update of created_at on subscribers
when old.created_at is not new.created_at
begin
    update reader_days set signed_up = signed_up - 1 where day = old.created_at / 86400000;
    insert into reader_days (day, signed_up) values (new.created_at / 86400000, 1)
        on conflict (day) do update set signed_up = signed_up + 1;
end;

create trigger reader_days_delete after delete on subscribers
begin
    update reader_days set signed_up = signed_up - 1 where day = old.created_at / 86400000;
    update reader_days set confirmed = confirmed - 1
        where old.confirmed_at is not null and day = old.confirmed_at / 86400000;
    update reader_days set unsubscribed = unsubscribed - 1
        where old.unsubscribed_at is not null and day = old.unsubscribed_at / 86400000;
end;
