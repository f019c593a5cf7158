-- The relay now deletes a row once JetStream has acknowledged it. Rows this service had already
-- published are removed here, or they would go out again after the dedupe window.
DELETE FROM "outbox" WHERE "published_at" IS NOT NULL;--> statement-breakpoint
DROP INDEX "outbox_unpublished_idx";--> statement-breakpoint
ALTER TABLE "outbox" DROP COLUMN "published_at";