-- A reader's deliveries were indexed by (subscriber_id, kind, created_at)
-- for every kind, so a send of a million added a million entries spread
-- over the whole index, and on PostgreSQL each claim and each outcome (a
-- new version of the row) added one more. Report deliveries are found by
-- reader through outbox_one_report_per_reader, probed once per send, so
-- this index keeps only the other kinds (confirmations and test copies).
-- The statements that use it name kind <> 'report' as a literal, which is
-- what lets the planner use a partial index.
drop index outbox_subscriber;
create index outbox_subscriber on outbox (subscriber_id, kind, created_at) where kind <> 'report';
