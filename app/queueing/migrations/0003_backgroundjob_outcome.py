from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('queueing', '0002_outbox_states_and_clock'),
    ]

    operations = [
        migrations.AddField(
            model_name='backgroundjob',
            name='outcome',
            field=models.JSONField(blank=True, null=True),
        ),
    ]
