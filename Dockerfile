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

# Never root at run time, and the code is root's: the runtime user reads it and can't rewrite it
# (code execution in a job or a request can't plant itself for the next start). Only var/media
# (local media, MEDIA_STORAGE=local) is the runtime user's; tests/security/test_deploy.py checks.
RUN groupadd --system egoejo && useradd --system --gid egoejo --home /srv/egoejo egoejo
COPY . .
# collectstatic needs settings but no secrets of consequence: a build-time throwaway key.
RUN DJANGO_SECRET_KEY=build-only EMAIL_URL=console:// python manage.py collectstatic --noinput >/dev/null \
    && chown -R root:root /srv/egoejo && chmod -R u=rwX,go=rX /srv/egoejo \
    && mkdir -p /srv/egoejo/var/media && chown egoejo:egoejo /srv/egoejo/var/media

USER egoejo
EXPOSE 8000
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "app.wsgi"]
