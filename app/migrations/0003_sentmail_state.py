from django.db import migrations, models


class Migration(migrations.Migration):
    """SentMail rows are written before DATA (`attempting`) and marked `sent` after the 250."""

    dependencies = [("egoejo", "0002_backgroundjob_moves_to_queueing")]

    operations = [
        migrations.AddField(
            model_name="sentmail",
            name="state",
            field=models.CharField(choices=[("attempting", "Attempting"), ("sent", "Sent")], default="sent", max_length=10),
        ),
        migrations.AddField(
            model_name="sentmail",
            name="attempts",
            field=models.PositiveIntegerField(default=1),
        ),
    ]
