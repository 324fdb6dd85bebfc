-- The owner's PID namespace (`/proc/self/ns/pid`, '' if unknown): two
-- containers can share a host name (and boot id) while their pids mean
-- different processes, so a pid is checked only within its own namespace.
ALTER TABLE run_leases ADD COLUMN pid_namespace TEXT NOT NULL DEFAULT '';
