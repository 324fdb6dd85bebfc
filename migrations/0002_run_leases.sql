-- Who executes a run: at most one lease per run. A lease is live until
-- `expires_at` (its owner renews it while executing); on the owner's own host
-- it is stale at once when the owner's process is gone.
CREATE TABLE run_leases (
    run_id TEXT PRIMARY KEY REFERENCES runs (id),
    host TEXT NOT NULL,                  -- the owner's host name
    pid INTEGER NOT NULL,
    process_start INTEGER NOT NULL,      -- /proc/PID/stat field 22 (clock ticks after boot); 0 if unknown
    boot_id TEXT NOT NULL,               -- the owner host's boot id ('' if unknown)
    token TEXT NOT NULL,                 -- random, one per acquisition
    acquired_at TEXT NOT NULL,           -- RFC 3339 UTC
    renewed_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
