-- 017_durable_job_queue: a job waiting for its server is a row, not a thread. Frozen.
-- A queued job has jobs.status = 'queued'; `queued_after` keeps the jobs it was queued behind
-- (what the pages show: "queued after #3"). Whichever Shoal process next finds the job's servers
-- free starts it (core/jobs/queue.py), so a killed app loses no queued job.
ALTER TABLE jobs ADD COLUMN queued_after BIGINT[];
