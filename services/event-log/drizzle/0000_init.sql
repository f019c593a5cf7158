CREATE TABLE "events" (
	"seq" bigserial PRIMARY KEY NOT NULL,
	"event_id" text,
	"stream" text NOT NULL,
	"stream_seq" bigint NOT NULL,
	"stream_time" timestamp (6) with time zone NOT NULL,
	"subject" text NOT NULL,
	"type" text,
	"source" text,
	"entity" text,
	"time" timestamp (3) with time zone NOT NULL,
	"data" jsonb,
	"headers" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"traceparent" text,
	"correlation_id" text,
	"valid" boolean NOT NULL,
	"error" text,
	"raw" text,
	"stored_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "events_stream_position_key" ON "events" USING btree ("stream","stream_seq","stream_time");--> statement-breakpoint
CREATE INDEX "events_time_idx" ON "events" USING btree ("time" DESC NULLS LAST,"seq" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "events_entity_time_idx" ON "events" USING btree ("entity","time" DESC NULLS LAST,"seq" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "events_type_time_idx" ON "events" USING btree ("type","time" DESC NULLS LAST,"seq" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "events_source_time_idx" ON "events" USING btree ("source","time" DESC NULLS LAST,"seq" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "events_subject_time_idx" ON "events" USING btree ("subject","time" DESC NULLS LAST,"seq" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "events_event_id_idx" ON "events" USING btree ("event_id");--> statement-breakpoint
CREATE INDEX "events_invalid_idx" ON "events" USING btree ("seq") WHERE not "events"."valid";