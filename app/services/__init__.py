"""Business logic. Views and jobs are thin and call in here."""
