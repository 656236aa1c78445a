-- Times are Unix milliseconds (bigint) so that the same queries run on
-- SQLite and PostgreSQL.

create table app_secrets (
    name text primary key,
    value text not null
);

create table subscribers (
    id integer primary key autoincrement,
    email text not null unique,
    name text,
    status text not null check (status in ('pending', 'confirmed', 'unsubscribed')),
    created_at bigint not null,
    confirmed_at bigint,
    unsubscribed_at bigint
);
create index subscribers_status on subscribers (status, id);

create table confirmation_tokens (
    token_hash text primary key,
    subscriber_id bigint not null references subscribers (id) on delete cascade,
    created_at bigint not null,
    expires_at bigint not null,
    used_at bigint
);
create index confirmation_tokens_subscriber on confirmation_tokens (subscriber_id);

-- Every email the service sends goes through this queue. A row is claimed by
-- setting lease_until; a worker that dies leaves a lease that simply expires.
create table outbox (
    id integer primary key autoincrement,
    kind text not null check (kind in ('confirmation', 'report', 'test')),
    subscriber_id bigint references subscribers (id) on delete set null,
    report_id bigint,
    recipient text not null,
    seed text,
    status text not null default 'queued'
        check (status in ('queued', 'paused', 'sent', 'failed', 'skipped', 'cancelled')),
    attempts integer not null default 0,
    next_attempt_at bigint not null,
    lease_until bigint,
    leased_by text,
    message_id text,
    last_error text,
    created_at bigint not null,
    sent_at bigint
);
create index outbox_due on outbox (status, next_attempt_at);
create index outbox_subscriber on outbox (subscriber_id, kind, created_at);
