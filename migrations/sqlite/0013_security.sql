-- API tokens may expire; each sign-up keeps the name it was given, so the
-- name a reader ends up with is the one sent with the sign-up they confirmed.
alter table api_tokens add column expires_at bigint;
alter table confirmation_tokens add column name text;
