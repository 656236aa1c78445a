-- Links and the subscriber API name readers and reports by a random public
-- id (a version 4 UUID, as text) instead of the row id, which is sequential
-- and would tell anyone with two links how many readers or reports there are.
--
-- The service sets the id on every insert; the default fills the existing
-- rows (a volatile default is computed for each row) and any row inserted
-- without one.

alter table subscribers add column public_id text not null default gen_random_uuid()::text;
alter table reports add column public_id text not null default gen_random_uuid()::text;

create unique index subscribers_public_id on subscribers (public_id);
create unique index reports_public_id on reports (public_id);
