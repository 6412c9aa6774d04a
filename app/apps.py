from django.apps import AppConfig


class EgoejoConfig(AppConfig):
    name = "app"
    label = "egoejo"
    verbose_name = "EGOEJO"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import post_delete

        if settings.TRACING_EXPORTER:  # before any handler loads the middleware (app/tracing.py)
            from app.tracing import init_tracing

            init_tracing(exporter=settings.TRACING_EXPORTER, sample_ratio=settings.TRACING_SAMPLE_RATIO)

        from app.models import UploadedImage
        from app.services.images import renditions

        # A deleted image (or a deleted member's, by cascade) takes its objects with it.
        post_delete.connect(renditions.on_image_deleted, sender=UploadedImage, dispatch_uid="egoejo-image-files")
