-- Searching a million readers by part of an address: an index of every
-- three-letter piece of each address, so a search reads the readers whose
-- address has the pieces instead of every address. The index holds no copy
-- of the addresses (it reads them from subscribers) and no positions.
create virtual table subscriber_search using fts5(
    email,
    content = 'subscribers',
    content_rowid = 'id',
    tokenize = 'trigram',
    detail = 'none'
);
insert into subscriber_search (subscriber_search) values ('rebuild');

create trigger subscriber_search_insert after insert on subscribers
begin
    insert into subscriber_search (rowid, email) values (new.id, new.email);
end;

create trigger subscriber_search_delete after delete on subscribers
begin
    insert into subscriber_search (subscriber_search, rowid, email)
        values ('delete', old.id, old.email);
end;

create trigger subscriber_search_update after update of email on subscribers
begin
    insert into subscriber_search (subscriber_search, rowid, email)
        values ('delete', old.id, old.email);
    insert into subscriber_search (rowid, email) values (new.id, new.email);
end;
