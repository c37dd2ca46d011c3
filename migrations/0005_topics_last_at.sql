ALTER TABLE "topics" ADD COLUMN "last_at" timestamp with time zone DEFAULT now() NOT NULL;--> statement-breakpoint
-- Backfill: a topic's last activity is the time of its last message.
UPDATE "topics" AS t SET "last_at" = m."at" FROM "messages" AS m WHERE m."topic" = t."name" AND m."id" = t."last_id";--> statement-breakpoint
-- A topic with subscribers exists: subscribing now makes its row, as a first publish does.
INSERT INTO "topics" ("name") SELECT DISTINCT "topic" FROM "topic_members" WHERE "instances" > 0 ON CONFLICT DO NOTHING;--> statement-breakpoint
CREATE INDEX "topic_members_user_id_idx" ON "topic_members" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "topics_last_at_idx" ON "topics" USING btree ("last_at" DESC NULLS FIRST,"name") WHERE last_id > 0;
