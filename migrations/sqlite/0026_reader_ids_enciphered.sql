-- A new reader's public id is its row id enciphered under a key kept in
-- app_secrets (see src/store/reader_ids.rs), so it is neither stored nor
-- indexed: a random id in the unique index put every new reader on a page
-- of that index of its own. Readers from before keep their stored id.
--
-- The trigger that gave a row inserted without an id a random one goes: a
-- row without one is named by its enciphered row id. The index stays for
-- the stored ids; the empty ids of new readers sit together in it in row
-- order, each added beside the one before.
drop trigger subscribers_public_id;
