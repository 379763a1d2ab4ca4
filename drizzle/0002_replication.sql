CREATE TABLE `replication_batches` (
	`build_id` integer NOT NULL,
	`region` text NOT NULL,
	`seq` integer NOT NULL,
	`chunks` text NOT NULL,
	`bytes` integer NOT NULL,
	`status` text DEFAULT 'PENDING' NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`error` text,
	`updated_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL,
	PRIMARY KEY(`build_id`, `region`, `seq`)
);
--> statement-breakpoint
CREATE INDEX `replication_batches_status_idx` ON `replication_batches` (`status`,`updated_at`);--> statement-breakpoint
CREATE TABLE `replications` (
	`build_id` integer NOT NULL,
	`region` text NOT NULL,
	`status` text NOT NULL,
	`chunks_total` integer NOT NULL,
	`bytes_total` integer NOT NULL,
	`chunks_present` integer NOT NULL,
	`bytes_present` integer NOT NULL,
	`error` text,
	`created_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL,
	`updated_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL,
	PRIMARY KEY(`build_id`, `region`)
);
