-- Claims take queued rows in (next_attempt_at, id) order. This index holds
-- the queued rows alone, in that order, so a delivered row leaves it
-- instead of moving to another part of it, and it stays as small as the
-- queue however many deliveries the outbox keeps. The statements that read
-- it name the status 'queued' as a literal, which is what lets SQLite use a
-- partial index.
drop index outbox_due;
create index outbox_queued on outbox (next_attempt_at, id) where status = 'queued';
