# The outbox table moves from the `egoejo` app to the queueing layer's own app, unchanged in the
# database: this migration only takes the model over in Django's state (egoejo 0002 lets it go).
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("egoejo", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="BackgroundJob",
                    fields=[
                        ("id", models.CharField(max_length=64, primary_key=True, serialize=False)),
                        ("queue", models.CharField(max_length=32)),
                        ("func", models.CharField(max_length=200)),
                        ("args", models.JSONField(default=list)),
                        ("kwargs", models.JSONField(default=dict)),
                        (
                            "state",
                            models.CharField(
                                choices=[("pending", "Pending"), ("finished", "Finished"), ("failed", "Failed")],
                                db_index=True,
                                default="pending",
                                max_length=10,
                            ),
                        ),
                        ("failure_reason", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("ended_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "owner",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="background_jobs",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={"ordering": ["-created_at"], "db_table": "egoejo_backgroundjob"},
                ),
            ],
            database_operations=[],
        ),
    ]
