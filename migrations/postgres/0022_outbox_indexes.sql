-- A send of a million deliveries writes each row's index entries at the
-- enqueue; these indexes hold only the rows they serve, so the enqueue
-- writes fewer entries and the statements that use them read fewer.

-- The send rate over the last minute reads delivered rows only.
drop index outbox_report_sent;
create index outbox_report_sent on outbox (report_id, sent_at)
    where kind = 'report' and sent_at is not null;

-- The report page lists a send's failures; pausing, resuming and retrying a
-- send read its deliveries through outbox_one_report_per_reader instead.
drop index outbox_report_status;
create index outbox_report_failed on outbox (report_id, id) where status = 'failed';

-- Lease renewal and the count of deliveries in flight read only the rows
-- that workers hold now, however long the outbox.
create index outbox_leased on outbox (leased_by, report_id) where leased_by is not null;

-- Every delivery the enqueue writes names a reader it has just read, so
-- checking each against subscribers (and locking the reader's row for it)
-- only doubled the enqueue's time. Erasing a reader clears the name itself
-- (Store::delete_reader), as the constraint's "on delete set null" did.
alter table outbox drop constraint if exists outbox_subscriber_id_fkey;
