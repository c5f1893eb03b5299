"""Job life-cycle policies: retries, backoff, timeouts, limits, dead jobs and cron, read from the policy file."""
