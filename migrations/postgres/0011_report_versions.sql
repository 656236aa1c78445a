-- The exact text each delivery goes out with. A draft changes between test
-- copies and the send; every test copy and every reader's copy carries the
-- revision it was queued with, and is rendered from that revision's source.

alter table reports add column revision bigint not null default 1;

create table report_versions (
    report_id bigint not null references reports (id) on delete cascade,
    revision bigint not null,
    source text not null,
    created_at bigint not null,
    primary key (report_id, revision)
);

alter table outbox add column report_revision bigint;
alter table sends add column report_revision bigint;

-- What was queued before revisions existed goes out as the report stands.
insert into report_versions (report_id, revision, source, created_at)
    select id, 1, source, updated_at from reports;
update outbox set report_revision = 1 where report_id is not null;
update sends set report_revision = 1 where started_at is not null;
