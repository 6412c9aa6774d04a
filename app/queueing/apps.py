from __future__ import annotations

from django.apps import AppConfig


class QueueingConfig(AppConfig):
    name = "app.queueing"
    label = "queueing"
    verbose_name = "Queueing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from importlib import import_module

        from django.conf import settings
        from django.core.signals import request_finished, request_started
        from django.utils.module_loading import autodiscover_modules

        from . import dispatch, rq_compat

        # Each installed app declares its queues, jobs and schedules in its `jobs` module.
        autodiscover_modules("jobs")
        for module in getattr(settings, "QUEUEING_JOB_MODULES", ()):
            import_module(module)  # declarations outside an app's `jobs` module (tests' fixtures)
        # No reader in this process unpickles what Redis holds, whichever serializer it asks RQ for.
        rq_compat.install_json_only()
        # RQ's serializer resolution and timestamp parsing sped up in every process (with the fast
        # paths on): workers, and the web's `.delay()`, which builds a Job handle per call.
        rq_compat.install_speedups()
        rq_compat.scheduler.quiet_crontab_future_warning()  # rq-scheduler's call, not ours (rq_compat/scheduler.py)
        # Jobs enqueued while serving a request reach Redis once the response has gone.
        request_started.connect(dispatch.on_request_started, dispatch_uid="queueing-dispatch-start")
        request_finished.connect(dispatch.on_request_finished, dispatch_uid="queueing-dispatch-finish")
