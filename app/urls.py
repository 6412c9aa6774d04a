from django.contrib import admin
from django.urls import include, path

from app.views import auth, health, images, impact, jobs, metrics, projects, schema

handler500 = "app.views.http.server_error"

urlpatterns = [
    path("api/auth/csrf/", auth.csrf, name="csrf"),
    path("api/auth/register/", auth.register, name="register"),
    path("api/auth/login/", auth.login_view, name="login"),
    path("api/auth/logout/", auth.logout_view, name="logout"),
    path("api/auth/confirm/", auth.confirm, name="confirm"),
    path("api/auth/password-reset/", auth.password_reset, name="password-reset"),
    path("api/auth/password-reset/confirm/", auth.password_reset_confirm, name="password-reset-confirm"),
    # The pages the mailed links open (app/services/account_tokens.py): GET shows a form, POST acts.
    path("account/confirm/<str:token>/", auth.confirm_page, name="confirm-page"),
    path("account/reset/<str:token>/", auth.reset_page, name="reset-page"),
    path("api/images/", images.upload, name="image-upload"),
    path("api/images/<int:image_id>/", images.detail, name="image-detail"),
    # Where local storage's url() points (MEDIA_URL); with S3 clients get signed bucket URLs.
    path("media/<path:key>", images.rendition_file, name="media-rendition"),
    path("api/projects/", projects.project_list, name="projects"),
    path("api/projects/<int:project_id>/contributions/", projects.contribution_create, name="contribute"),
    path("api/impact/", impact.my_impact, name="impact"),
    path("api/jobs/<str:job_id>/", jobs.job_status, name="job-status"),
    path("livez", health.livez, name="livez"),
    path("api/schema/", schema.openapi_schema, name="openapi-schema"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics.prometheus_metrics, name="metrics"),
    path("admin/django-rq/", include("app.queueing.django_rq_pages")),
    path("admin/", admin.site.urls),
]
