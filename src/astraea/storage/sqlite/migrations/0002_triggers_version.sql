-- The version of each realm's trigger set, so ingestion learns of a change with one primary-key
-- read instead of reloading every trigger. The trigger repository sets it to a fresh random
-- value in the transaction that installs or deletes a trigger: readers only compare it for
-- equality, and a random value, unlike a counter, cannot repeat when a realm is deleted and
-- created again. 0: no trigger was ever installed in the realm.
ALTER TABLE realms ADD COLUMN triggers_version INTEGER NOT NULL DEFAULT 0;
