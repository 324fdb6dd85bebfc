-- Reruns (`pallet rerun ID --from STEP`): a run started from another run's
-- recorded outputs names that run and the step it ran again from; the
-- attempts it took over from it name the run that made them.
ALTER TABLE runs ADD COLUMN rerun_of TEXT;            -- the id of the run it reran; NULL otherwise
ALTER TABLE runs ADD COLUMN rerun_from TEXT;          -- the top-level step it ran again from
ALTER TABLE step_attempts ADD COLUMN reused_from TEXT; -- the run whose completed attempt this copies; NULL if it ran here
