"""Background jobs: one module per queue (emails, images, metrics); queues.py owns enqueuing."""
