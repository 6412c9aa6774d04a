"""The platform's queues and jobs, one module per queue; the queueing layer loads this package.

A queue is declared in its module (`declare_queue`), each job beside its function (`@job`), a
recurring job above its `@job` (`@recurring`). Adding a queue: a module here, its import below,
and a worker line (Procfile, docker-compose.yml) that serves it.
"""

from . import emails, images, metrics

__all__ = ["emails", "images", "metrics"]
