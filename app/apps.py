from django.apps import AppConfig


class EgoejoConfig(AppConfig):
    name = "app"
    label = "egoejo"
    verbose_name = "EGOEJO"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from app.models import UploadedImage
        from app.services import images

        # A deleted image (or a deleted member's, by cascade) takes its objects with it.
        post_delete.connect(images.on_image_deleted, sender=UploadedImage, dispatch_uid="egoejo-image-files")
