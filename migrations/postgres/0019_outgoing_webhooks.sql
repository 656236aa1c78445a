-- Outgoing webhooks: what happened (a sign-up, a confirmation, a bounce, a
-- finished send), written in the transaction of the change itself, then
-- posted to the configured endpoints by the workers.

-- One row per event. `routed_at` is set once the event has a delivery row
-- for every endpoint that wants it; the body is stored exactly as it is
-- sent and signed, so every retry carries the same bytes.
create table webhook_events (
    id bigserial primary key,
    event_id text not null unique,
    kind text not null,
    body text not null,
    created_at bigint not null,
    routed_at bigint
);
create index webhook_events_unrouted on webhook_events (id) where routed_at is null;
create index webhook_events_created on webhook_events (created_at);

-- One row per event and endpoint, queued and leased like the mail outbox.
create table webhook_deliveries (
    id bigserial primary key,
    event_id bigint not null references webhook_events (id) on delete cascade,
    endpoint text not null,
    status text not null default 'queued' check (status in ('queued', 'delivered', 'failed')),
    attempts bigint not null default 0,
    next_attempt_at bigint not null,
    lease_until bigint,
    leased_by text,
    response_status bigint,
    last_error text,
    delivered_at bigint,
    created_at bigint not null,
    unique (event_id, endpoint)
);
create index webhook_deliveries_due on webhook_deliveries (next_attempt_at, id) where status = 'queued';
create index webhook_deliveries_leased on webhook_deliveries (leased_by) where leased_by is not null;
