from django.db import migrations, models


class Migration(migrations.Migration):
    """The task browser's indexes (admin.py BackgroundJobAdmin): two more for the list, each one a
    cost on every enqueue's INSERT, and the ended_at index of 0002 made covering for the graphs
    (benchmarks/areas/ledger.py times the pages on 1,000,000 rows with them). The verbose names
    title the admin's list "jobs (task browser)".
    """

    dependencies = [
        ('queueing', '0005_ledger'),
    ]

    operations = [
        # Operators' actions (task_browser.py), apart from the worker's attempt history.
        migrations.AddField(model_name='backgroundjob', name='actions', field=models.JSONField(blank=True, null=True)),
        migrations.AlterModelOptions(
            name='backgroundjob',
            options={'ordering': ['-created_at'], 'verbose_name': 'job', 'verbose_name_plural': 'jobs (task browser)'},
        ),
        # The graphs (ledger_graphs.py): the rows ended in the last hour or day, read from the index
        # alone (INCLUDE, PostgreSQL; elsewhere a plain index on ended_at). Partial as before: a
        # pending row's INSERT never writes it; the purge by ended_at uses it as it used the old one.
        migrations.RemoveIndex(model_name='backgroundjob', name='outbox_ended_idx'),
        migrations.AddIndex(
            model_name='backgroundjob',
            index=models.Index(
                condition=models.Q(('state', 'pending'), _negated=True), fields=['ended_at'],
                include=['queue', 'state', 'attempts', 'started_at', 'due_at', 'created_at'], name='ledger_ended_idx',
            ),
        ),
        # The list, newest first (ORDER BY created_at DESC LIMIT 50), and a time range alone.
        migrations.AddIndex(
            model_name='backgroundjob',
            index=models.Index(fields=['created_at'], name='ledger_created_idx'),
        ),
        # A search by function + state (+ time range): equality on the first two, the range and
        # the newest-first order on the third.
        migrations.AddIndex(
            model_name='backgroundjob',
            index=models.Index(fields=['func', 'state', 'created_at'], name='ledger_func_state_idx'),
        ),
    ]
