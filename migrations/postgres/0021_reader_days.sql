-- Reader growth per day, kept as readers sign up, confirm, leave or are
-- erased, so the overview reads a few dozen rows instead of every reader of
-- the last twelve weeks. A day is a UTC day: Unix milliseconds / 86400000.
-- As in 0017, the triggers run once per statement over its changed rows.
create table reader_days (
    day bigint primary key,
    signed_up bigint not null default 0,
    confirmed bigint not null default 0,
    unsubscribed bigint not null default 0
);

-- What a set of readers adds to each day, times `sign` (1 or -1).
create function reader_day_changes(
    readers_created bigint[], readers_confirmed bigint[], readers_unsubscribed bigint[], sign bigint
) returns void language sql as $$
    insert into reader_days (day, signed_up, confirmed, unsubscribed)
        select day, sign * sum(s), sign * sum(c), sign * sum(u) from (
            select t / 86400000 as day, 1 as s, 0 as c, 0 as u from unnest(readers_created) as t
            union all
            select t / 86400000, 0, 1, 0 from unnest(readers_confirmed) as t where t is not null
            union all
            select t / 86400000, 0, 0, 1 from unnest(readers_unsubscribed) as t where t is not null
        ) as days group by day order by day
        on conflict (day) do update set
            signed_up = reader_days.signed_up + excluded.signed_up,
            confirmed = reader_days.confirmed + excluded.confirmed,
            unsubscribed = reader_days.unsubscribed + excluded.unsubscribed;
$$;

select reader_day_changes(
    coalesce(array_agg(created_at), '{}'),
    coalesce(array_agg(confirmed_at), '{}'),
    coalesce(array_agg(unsubscribed_at), '{}'),
    1
) from subscribers;

create function count_reader_days_inserted() returns trigger language plpgsql as $$
begin
    perform reader_day_changes(
        coalesce(array_agg(created_at), '{}'),
        coalesce(array_agg(confirmed_at), '{}'),
        coalesce(array_agg(unsubscribed_at), '{}'),
        1) from added;
    return null;
end $$;

create function count_reader_days_deleted() returns trigger language plpgsql as $$
begin
    perform reader_day_changes(
        coalesce(array_agg(created_at), '{}'),
        coalesce(array_agg(confirmed_at), '{}'),
        coalesce(array_agg(unsubscribed_at), '{}'),
        -1) from removed;
    return null;
end $$;

-- Only readers whose dates changed count: their old days lose them and
-- their new days gain them. A change of status alone leaves the days be.
create function count_reader_days_updated() returns trigger language plpgsql as $$
begin
    perform reader_day_changes(
        coalesce(array_agg(b.created_at), '{}'),
        coalesce(array_agg(b.confirmed_at), '{}'),
        coalesce(array_agg(b.unsubscribed_at), '{}'),
        -1) from before_rows b join after_rows a on a.id = b.id
        where (a.created_at, a.confirmed_at, a.unsubscribed_at)
            is distinct from (b.created_at, b.confirmed_at, b.unsubscribed_at);
    perform reader_day_changes(
        coalesce(array_agg(a.created_at), '{}'),
        coalesce(array_agg(a.confirmed_at), '{}'),
        coalesce(array_agg(a.unsubscribed_at), '{}'),
        1) from after_rows a join before_rows b on b.id = a.id
        where (a.created_at, a.confirmed_at, a.unsubscribed_at)
            is distinct from (b.created_at, b.confirmed_at, b.unsubscribed_at);
    return null;
end $$;

create trigger reader_days_insert after insert on subscribers
    referencing new table as added
    for each statement execute function count_reader_days_inserted();
create trigger reader_days_update after update on subscribers
    referencing old table as before_rows new table as after_rows
    for each statement execute function count_reader_days_updated();
create trigger reader_days_delete after delete on subscribers
    referencing old table as removed
    for each statement execute function count_reader_days_deleted();
