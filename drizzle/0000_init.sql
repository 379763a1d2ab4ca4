CREATE TABLE `applications` (
	`name` text PRIMARY KEY NOT NULL,
	`repo_url` text NOT NULL,
	`build_command` text NOT NULL,
	`artifact_path` text NOT NULL,
	`run_command` text NOT NULL,
	`health_check` text,
	`regions` text NOT NULL,
	`build_timeout_ms` integer,
	`created_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL
);
--> statement-breakpoint
CREATE TABLE `audit_log` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`ts` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL,
	`actor` text NOT NULL,
	`role` text NOT NULL,
	`action` text NOT NULL,
	`target` text,
	`details` text,
	`request_id` text,
	`ip` text
);
--> statement-breakpoint
CREATE INDEX `audit_log_target_idx` ON `audit_log` (`target`,`id`);--> statement-breakpoint
CREATE TABLE `build_logs` (
	`build_id` integer NOT NULL,
	`attempt` integer NOT NULL,
	`seq` integer NOT NULL,
	`ts` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL,
	`lines` text NOT NULL,
	PRIMARY KEY(`build_id`, `attempt`, `seq`)
);
--> statement-breakpoint
CREATE TABLE `builds` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`app` text NOT NULL,
	`commit_sha` text NOT NULL,
	`status` text DEFAULT 'QUEUED' NOT NULL,
	`failure_reason` text,
	`failure_message` text,
	`created_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL,
	`run_after` integer DEFAULT 0 NOT NULL,
	`started_at` integer,
	`finished_at` integer,
	`attempt` integer DEFAULT 0 NOT NULL,
	`max_attempts` integer NOT NULL,
	`timeout_ms` integer NOT NULL,
	`worker_id` text,
	`lease_token` text,
	`last_heartbeat` integer,
	`lease_expires_at` integer,
	`manifest_digest` text,
	`size_bytes` integer,
	`created_by` text,
	FOREIGN KEY (`app`) REFERENCES `applications`(`name`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `builds_status_created_idx` ON `builds` (`status`,`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `builds_app_commit_idx` ON `builds` (`app`,`commit_sha`);--> statement-breakpoint
CREATE INDEX `builds_status_lease_idx` ON `builds` (`status`,`lease_expires_at`);--> statement-breakpoint
CREATE TABLE `counters` (
	`name` text PRIMARY KEY NOT NULL,
	`value` integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE `tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`role` text NOT NULL,
	`region` text,
	`secret_hash` text NOT NULL,
	`created_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL,
	`created_by` text,
	`expires_at` integer,
	`revoked_at` integer
);
