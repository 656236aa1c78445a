-- Links and the subscriber API name readers and reports by a random public
-- id (a version 4 UUID, as text) instead of the row id, which is sequential
-- and would tell anyone with two links how many readers or reports there are.
--
-- The service sets the id on every insert. SQLite cannot give an added
-- column a random default, so a trigger fills the id of any row inserted
-- without one; it only fires for such rows.

alter table subscribers add column public_id text;
alter table reports add column public_id text;

update subscribers set public_id =
    lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
    substr(lower(hex(randomblob(2))), 2) || '-' ||
    substr('89ab', 1 + (random() & 3), 1) || substr(lower(hex(randomblob(2))), 2) || '-' ||
    lower(hex(randomblob(6)));
update reports set public_id =
    lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
    substr(lower(hex(randomblob(2))), 2) || '-' ||
    substr('89ab', 1 + (random() & 3), 1) || substr(lower(hex(randomblob(2))), 2) || '-' ||
    lower(hex(randomblob(6)));

create unique index subscribers_public_id on subscribers (public_id);
create unique index reports_public_id on reports (public_id);

create trigger subscribers_public_id after insert on subscribers
when new.public_id is null
begin
    update subscribers set public_id =
        lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
        substr(lower(hex(randomblob(2))), 2) || '-' ||
        substr('89ab', 1 + (random() & 3), 1) || substr(lower(hex(randomblob(2))), 2) || '-' ||
        lower(hex(randomblob(6)))
    where id = new.id;
end;

create trigger reports_public_id after insert on reports
when new.public_id is null
begin
    update reports set public_id =
        lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
        substr(lower(hex(randomblob(2))), 2) || '-' ||
        substr('89ab', 1 + (random() & 3), 1) || substr(lower(hex(randomblob(2))), 2) || '-' ||
        lower(hex(randomblob(6)))
    where id = new.id;
end;
