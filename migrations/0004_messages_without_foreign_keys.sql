ALTER TABLE "messages" DROP CONSTRAINT "messages_topic_topics_name_fk";
--> statement-breakpoint
ALTER TABLE "messages" DROP CONSTRAINT "messages_author_id_users_id_fk";
