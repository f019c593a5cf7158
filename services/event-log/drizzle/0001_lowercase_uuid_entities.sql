-- Ingest stores a uuid entity (a user id) lower-cased, so an `entity` filter finds it however its
-- publisher spelled it. Rows stored before then keep the spelling they were sent with: the same.
UPDATE "events" SET "entity" = lower("entity")
WHERE "entity" ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' AND "entity" <> lower("entity");
