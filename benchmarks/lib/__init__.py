"""What the benchmark areas share: set-up and tables (common), jobs, worker processes, a web site."""
