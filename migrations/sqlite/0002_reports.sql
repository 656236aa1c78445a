-- Reports, their sends, editors and reader feedback.

create table reports (
    id integer primary key autoincrement,
    slug text not null unique,
    title text not null,
    source text not null,
    created_at bigint not null,
    updated_at bigint not null
);

-- One send per report: the unique report_id is what makes a repeated or
-- concurrent trigger harmless.
create table sends (
    id integer primary key autoincrement,
    report_id bigint not null unique references reports (id),
    idempotency_key text not null unique,
    state text not null check (state in ('scheduled', 'sending', 'paused', 'cancelled', 'done')),
    scheduled_at bigint not null,
    started_at bigint,
    finished_at bigint,
    total bigint not null default 0,
    created_at bigint not null
);
create index sends_due on sends (state, scheduled_at);

-- At most one delivery of a report per reader, whatever happens.
create unique index outbox_one_report_per_reader on outbox (report_id, subscriber_id) where kind = 'report';
create index outbox_report_status on outbox (report_id, status);

create table admins (
    id integer primary key autoincrement,
    email text not null unique,
    password_hash text not null,
    created_at bigint not null
);

create table api_tokens (
    id integer primary key autoincrement,
    admin_id bigint not null references admins (id) on delete cascade,
    token_hash text not null unique,
    created_at bigint not null,
    last_used_at bigint
);

create table admin_sessions (
    id_hash text primary key,
    admin_id bigint not null references admins (id) on delete cascade,
    csrf_token text not null,
    created_at bigint not null,
    expires_at bigint not null
);

-- One vote per reader and report; the latest answer counts.
create table votes (
    report_id bigint not null references reports (id) on delete cascade,
    subscriber_id bigint not null,
    helpful bigint not null check (helpful in (0, 1)),
    comment text,
    created_at bigint not null,
    updated_at bigint not null,
    primary key (report_id, subscriber_id)
);
