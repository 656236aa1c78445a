-- A new reader's public id is its row id enciphered under a key kept in
-- app_secrets (see src/store/reader_ids.rs), so nothing is stored or
-- indexed for it: a random id in the unique index put every new reader on
-- a page of that index of its own. Readers from before keep their stored
-- id.
--
-- A row inserted without an id no longer gets a random one: it is named by
-- its enciphered row id.
alter table subscribers alter column public_id drop default;
alter table subscribers alter column public_id drop not null;

-- The unique index keeps only the stored ids: a new reader adds no entry.
drop index subscribers_public_id;
create unique index subscribers_public_id on subscribers (public_id)
    where public_id is not null;
