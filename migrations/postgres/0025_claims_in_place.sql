-- A claim sets a delivery's lease (lease_until, leased_by, attempts). While
-- an index named leased_by, every claim wrote a new version of the row on
-- another page and an entry in each of the outbox's indexes: four index
-- entries a message before it was even sent. With no index on those columns
-- and room left on each page, PostgreSQL writes the claimed row beside the
-- old one and no index at all (a heap-only update).
--
-- What the index served moves elsewhere: a worker renews and hands back the
-- rows it holds by their ids, which it keeps, and publishes how many of
-- each report's deliveries it holds in delivery_holds, which the report's
-- progress reads.
drop index outbox_leased;

-- Pages filled to half leave room for the claimed versions of their rows;
-- this applies to the pages written from now on.
alter table outbox set (fillfactor = 50);

create table delivery_holds (
    worker text not null,
    report_id bigint not null,
    held bigint not null,
    -- A worker that stops publishing (killed) no longer counts after this.
    until bigint not null,
    primary key (worker, report_id)
);
