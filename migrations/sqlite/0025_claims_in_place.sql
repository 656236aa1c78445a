-- A claim sets a delivery's lease (lease_until, leased_by, attempts); the
-- index on leased_by made each claim write an index entry as well. A
-- worker now renews and hands back the rows it holds by their ids, which it
-- keeps, and publishes how many of each report's deliveries it holds in
-- delivery_holds, which the report's progress reads.
drop index outbox_leased;

create table delivery_holds (
    worker text not null,
    report_id integer not null,
    held integer not null,
    -- A worker that stops publishing (killed) no longer counts after this.
    until integer not null,
    primary key (worker, report_id)
);
