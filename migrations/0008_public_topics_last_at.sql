-- The directory's others are public topics: its index holds only those, so private topics are never read and skipped.
DROP INDEX "topics_last_at_idx";--> statement-breakpoint
CREATE INDEX "topics_public_last_at_idx" ON "topics" USING btree ("last_at" DESC NULLS FIRST,"name") WHERE last_id > 0 and visibility = 'public';