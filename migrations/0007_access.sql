-- Who is in a topic now keeps its rows under a name of its own: "member" now means a member of a private topic.
ALTER TABLE "topic_members" RENAME TO "topic_presence";--> statement-breakpoint
ALTER TABLE "topic_presence" RENAME CONSTRAINT "topic_members_topic_user_id_pk" TO "topic_presence_topic_user_id_pk";--> statement-breakpoint
ALTER TABLE "topic_presence" RENAME CONSTRAINT "topic_members_user_id_users_id_fk" TO "topic_presence_user_id_users_id_fk";--> statement-breakpoint
ALTER INDEX "topic_members_user_id_idx" RENAME TO "topic_presence_user_id_idx";--> statement-breakpoint
CREATE TABLE "topic_members" (
	"topic" text NOT NULL,
	"user_id" integer NOT NULL,
	"role" text NOT NULL,
	"added_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "topic_members_topic_user_id_pk" PRIMARY KEY("topic","user_id"),
	CONSTRAINT "topic_members_role_check" CHECK ("topic_members"."role" in ('owner', 'member'))
);
--> statement-breakpoint
ALTER TABLE "topic_members" ADD CONSTRAINT "topic_members_topic_topics_name_fk" FOREIGN KEY ("topic") REFERENCES "public"."topics"("name") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "topic_members" ADD CONSTRAINT "topic_members_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "topic_members_user_id_idx" ON "topic_members" USING btree ("user_id");--> statement-breakpoint
ALTER TABLE "topics" ADD COLUMN "visibility" text DEFAULT 'public' NOT NULL;--> statement-breakpoint
ALTER TABLE "topics" ADD COLUMN "kind" text;--> statement-breakpoint
ALTER TABLE "topics" ADD COLUMN "created_by" integer;--> statement-breakpoint
ALTER TABLE "topics" ADD CONSTRAINT "topics_visibility_check" CHECK ("topics"."visibility" in ('public', 'private'));--> statement-breakpoint
ALTER TABLE "topics" ADD CONSTRAINT "topics_kind_check" CHECK ("topics"."kind" is null or ("topics"."kind" = 'dm' and "topics"."visibility" = 'private'));--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "admin" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "disabled_at" timestamp with time zone;
