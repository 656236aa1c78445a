-- Searching a million readers by part of an address: a trigram index lets
-- `lower(email) like '%part%'` read the readers whose address has the
-- pieces instead of every address. pg_trgm ships with PostgreSQL and is a
-- trusted extension: a database owner may create it.
create extension if not exists pg_trgm;
create index subscribers_email_trigrams on subscribers using gin (lower(email) gin_trgm_ops);
