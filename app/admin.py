from django.contrib import admin

from app.models import Contribution, ImpactDashboard, Project, UploadedImage


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "created_at"]
    prepopulated_fields = {"slug": ["title"]}
    search_fields = ["title"]


@admin.register(Contribution)
class ContributionAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "amount", "created_at"]
    list_select_related = ["user", "project"]
    raw_id_fields = ["user", "project"]


@admin.register(ImpactDashboard)
class ImpactDashboardAdmin(admin.ModelAdmin):
    list_display = ["user", "total_contributed", "contributions_count", "projects_supported", "computed_at"]
    readonly_fields = ["computed_at"]
    raw_id_fields = ["user"]


@admin.register(UploadedImage)
class UploadedImageAdmin(admin.ModelAdmin):
    list_display = ["original_name", "owner", "status", "created_at", "processed_at"]
    list_filter = ["status"]
    raw_id_fields = ["owner"]
