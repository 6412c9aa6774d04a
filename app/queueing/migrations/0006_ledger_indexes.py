from django.db import migrations, models


class Migration(migrations.Migration):
    """The task browser's indexes (admin.py BackgroundJobAdmin), two only: each one costs every
    enqueue's INSERT (benchmarks/areas/ledger.py times the pages on 1,000,000 rows with them).

    The graphs (ledger_graphs.py) need none: they read the rows ended in the window through
    outbox_ended_idx (0002). The verbose names title the admin's list "jobs (task browser)".
    """

    dependencies = [
        ('queueing', '0005_ledger'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='backgroundjob',
            options={'ordering': ['-created_at'], 'verbose_name': 'job', 'verbose_name_plural': 'jobs (task browser)'},
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
