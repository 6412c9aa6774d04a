from typing import TYPE_CHECKING

from django.contrib import admin

from .models import BackgroundJob

if TYPE_CHECKING:
    _Admin = admin.ModelAdmin[BackgroundJob]
else:
    _Admin = admin.ModelAdmin  # not subscriptable at run time


@admin.register(BackgroundJob)
class BackgroundJobAdmin(_Admin):
    list_display = ["id", "func", "queue", "state", "owner", "created_at", "ended_at"]
    list_filter = ["queue", "state"]
    readonly_fields = [f.name for f in BackgroundJob._meta.fields]
    raw_id_fields = ["owner"]
