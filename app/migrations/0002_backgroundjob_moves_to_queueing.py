# The outbox model now belongs to the queueing layer (app.queueing); its table stays where it is.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("egoejo", "0001_initial"),
        ("queueing", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="BackgroundJob")],
            database_operations=[],
        ),
    ]
