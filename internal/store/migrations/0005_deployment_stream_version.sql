-- The deployment process manager's view of its process's stream (pyrite.deployment.raw,
-- keyed by process id): the highest aggregate version among the process's events it has
-- handled. Its deadline appends expect it (expectedVersion), so a timeout is never decided
-- on a stream that moved on. NULL (rows written before) means unknown: the timeout then
-- appends without an expectation.
ALTER TABLE deployment_processes ADD COLUMN stream_version BIGINT;
