from django.apps import AppConfig


class EgoejoConfig(AppConfig):
    name = "app"
    label = "egoejo"
    verbose_name = "EGOEJO"
    default_auto_field = "django.db.models.BigAutoField"
