-- Bounces and complaints: what came back from the mail world, and the
-- addresses that are not mailed again because of it.

-- Bounce mail and webhook bodies as received, cut to a bounded size and
-- kept for a retention period, so an editor can see why a reader was
-- suppressed.
create table bounce_messages (
    id bigserial primary key,
    source text not null,
    outcome text not null,
    raw text not null,
    truncated bigint not null default 0,
    received_at bigint not null
);
create index bounce_messages_received on bounce_messages (received_at);

-- One row per recipient a bounce or complaint names.
create table bounces (
    id bigserial primary key,
    kind text not null check (kind in ('hard', 'soft', 'complaint')),
    source text not null,
    recipient text not null,
    subscriber_id bigint references subscribers (id) on delete set null,
    report_id bigint,
    outbox_id bigint references outbox (id) on delete set null,
    status_code text,
    diagnostic text not null default '',
    message_id bigint references bounce_messages (id) on delete set null,
    created_at bigint not null
);
-- A provider that retries a webhook, or a bounce fed in twice, counts once.
create unique index bounces_once_per_delivery on bounces (outbox_id, kind);
create index bounces_report on bounces (report_id, kind);
create index bounces_recipient on bounces (recipient, kind, created_at);

-- Addresses that are never mailed again until an editor lifts it. Keyed by
-- address, not reader, so a later sign-up of the address stays suppressed.
create table suppressions (
    email text primary key,
    reason text not null check (reason in ('bounced', 'complained')),
    detail text not null,
    bounce_id bigint references bounces (id) on delete set null,
    created_at bigint not null
);
