-- How a reader added as already confirmed gave consent: another system's
-- record (when and where), kept as the proof double opt-in would have been.
create table subscriber_consents (
    subscriber_id integer primary key references subscribers (id) on delete cascade,
    consent_at bigint not null,
    source text not null,
    recorded_at bigint not null
);
