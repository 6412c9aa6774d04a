# The application image: web, workers, scheduler and dashboard all run from it.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=app.settings

WORKDIR /srv/egoejo
COPY requirements.txt .
# The lock (scripts/lock): every transitive dependency pinned, each file's sha256 checked.
RUN pip install --require-hashes --no-deps -r requirements.txt && pip check

# Never root at run time: the app writes only to its media volume.
RUN groupadd --system egoejo && useradd --system --gid egoejo --home /srv/egoejo egoejo \
    && mkdir -p /srv/egoejo/var/media /srv/egoejo/var/static && chown -R egoejo:egoejo /srv/egoejo/var
COPY --chown=egoejo:egoejo . .
# collectstatic needs settings but no secrets of consequence: a build-time throwaway key.
RUN DJANGO_SECRET_KEY=build-only EMAIL_URL=console:// python manage.py collectstatic --noinput >/dev/null

USER egoejo
EXPOSE 8000
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "app.wsgi"]
