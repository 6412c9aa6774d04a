from django.db import migrations, models


class Migration(migrations.Migration):
    """The ledger's columns (models.BackgroundJob): attempts, their history, the next retry."""

    dependencies = [
        ('queueing', '0004_outbox_trace_parent'),
    ]

    operations = [
        migrations.AddField(model_name='backgroundjob', name='attempts', field=models.PositiveIntegerField(db_default=0)),
        migrations.AddField(model_name='backgroundjob', name='max_attempts', field=models.PositiveIntegerField(blank=True, null=True)),
        migrations.AddField(model_name='backgroundjob', name='started_at', field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name='backgroundjob', name='next_retry_at', field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name='backgroundjob', name='last_error', field=models.TextField(blank=True, db_default='')),
        migrations.AddField(model_name='backgroundjob', name='history', field=models.JSONField(blank=True, null=True)),
    ]
