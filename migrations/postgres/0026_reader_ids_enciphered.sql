-- A new reader's public id is its row id enciphered under a key kept in
-- app_secrets (see src/store/reader_ids.rs), so it is neither stored nor
-- indexed: a random id in the unique index put every new reader on a page
-- of that index of its own. Readers from before keep their stored id.
--
-- A row inserted without an id no longer gets a random one: it is named by
-- its enciphered row id. The index stays for the stored ids; the empty ids
-- of new readers sit together at its end in row order, each added beside
-- the one before.
alter table subscribers alter column public_id drop default;
alter table subscribers alter column public_id drop not null;
