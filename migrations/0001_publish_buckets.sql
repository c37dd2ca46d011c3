CREATE TABLE "publish_buckets" (
	"user_id" integer PRIMARY KEY NOT NULL,
	"tokens" double precision NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	"granted" integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE "publish_buckets" ADD CONSTRAINT "publish_buckets_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;