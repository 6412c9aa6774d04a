from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from app.queueing.access import bearer_token, may_operate_queues, token_matches
from app.queueing.connections import metrics_connection
from app.queueing.monitoring import JobStatsCollector


def operator_or_token(request: HttpRequest) -> bool:
    """The metrics token's bearer (Authorization: Bearer <METRICS_TOKEN>) or a queue operator's session."""
    presented = bearer_token(request)
    if not presented.isascii():  # hmac.compare_digest refuses a non-ASCII str (a 500): no token of ours is one
        presented = ""
    return token_matches(settings.METRICS_TOKEN, presented) or may_operate_queues(request.user)


@require_GET
@never_cache
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition: a bearer token (METRICS_TOKEN) or a queue operator's session."""
    if not operator_or_token(request):
        response = HttpResponse(
            "Unauthorized: send 'Authorization: Bearer <METRICS_TOKEN>'.\n", status=401, content_type="text/plain; charset=utf-8"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobStatsCollector(metrics_connection()))
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)
