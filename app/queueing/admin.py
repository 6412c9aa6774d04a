from typing import TYPE_CHECKING

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django_rq.models import Dashboard

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


@admin.register(Dashboard)
class QueuesLinkAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The admin index's link to the queues: a redirect to django-rq's one guarded mount.

    django-rq's own registration (RQ_SHOW_ADMIN_LINK, off in settings) would mount every one of
    its views a second time under /admin/django_rq/, behind is_staff alone and with deletes that
    bypass the outbox. This keeps the link and mounts nothing but the redirect.
    """

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and (request.user.is_superuser or request.user.has_perm("django_rq.admin")))

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.to_queues), name=name)]

    def to_queues(self, request: HttpRequest) -> HttpResponse:
        return HttpResponseRedirect(reverse("django_rq:home"))
