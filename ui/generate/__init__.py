"""The Generate page's parts: the job form, the models panel, prompts, a job's progress."""
