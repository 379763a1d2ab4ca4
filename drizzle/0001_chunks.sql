CREATE TABLE `chunk_replicas` (
	`digest` text NOT NULL,
	`region` text NOT NULL,
	`created_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL,
	PRIMARY KEY(`region`, `digest`)
);
--> statement-breakpoint
CREATE TABLE `chunks` (
	`digest` text PRIMARY KEY NOT NULL,
	`size` integer NOT NULL,
	`created_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `builds_lease_token_idx` ON `builds` (`lease_token`);