CREATE TABLE "instances" (
	"id" text PRIMARY KEY NOT NULL,
	"heartbeat_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "presence" (
	"topic" text NOT NULL,
	"user_id" integer NOT NULL,
	"instance_id" text NOT NULL,
	CONSTRAINT "presence_topic_user_id_instance_id_pk" PRIMARY KEY("topic","user_id","instance_id")
);
--> statement-breakpoint
CREATE TABLE "read_positions" (
	"user_id" integer NOT NULL,
	"topic" text NOT NULL,
	"last_read_id" bigint NOT NULL,
	CONSTRAINT "read_positions_user_id_topic_pk" PRIMARY KEY("user_id","topic")
);
--> statement-breakpoint
CREATE TABLE "topic_members" (
	"topic" text NOT NULL,
	"user_id" integer NOT NULL,
	"user_name" text NOT NULL,
	"instances" integer NOT NULL,
	CONSTRAINT "topic_members_topic_user_id_pk" PRIMARY KEY("topic","user_id")
);
--> statement-breakpoint
ALTER TABLE "presence" ADD CONSTRAINT "presence_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "read_positions" ADD CONSTRAINT "read_positions_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "topic_members" ADD CONSTRAINT "topic_members_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "instances_heartbeat_at_idx" ON "instances" USING btree ("heartbeat_at");--> statement-breakpoint
CREATE INDEX "presence_instance_id_idx" ON "presence" USING btree ("instance_id");