-- Why a send waits for an editor: paused by the service itself (the mail
-- relay cannot be used, or a scheduled send came too late), not by a person.
alter table sends add column pause_reason text;
