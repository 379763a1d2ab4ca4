CREATE TABLE `deployments` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`app` text NOT NULL,
	`build_id` integer NOT NULL,
	`previous_build_id` integer,
	`strategy` text NOT NULL,
	`status` text DEFAULT 'ROLLING' NOT NULL,
	`reason` text,
	`generation` integer,
	`rollback_of` integer,
	`superseded_by` integer,
	`created_by` text NOT NULL,
	`created_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL,
	`finished_at` integer,
	FOREIGN KEY (`app`) REFERENCES `applications`(`name`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `deployments_app_idx` ON `deployments` (`app`,`id`);--> statement-breakpoint
CREATE INDEX `deployments_status_idx` ON `deployments` (`status`);