"""What /metrics shows, in Prometheus' text format (prometheus_client, on a registry of the server's own):
requests by endpoint and status, pages, tokens, the queue, and latency."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Seconds: a tiny model's answer, a page on a GPU, a page on a CPU, a document.
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("vlmcli_requests", "Requests answered, by endpoint and HTTP status.",
                                ["endpoint", "status"], registry=self.registry)
        self.pages = Counter("vlmcli_pages", "Pages answered by /v1/ocr (read now or from the document's "
                             "manifest), by outcome: ok or failed.", ["outcome"], registry=self.registry)
        self.prompt_tokens = Counter("vlmcli_prompt_tokens", "Prompt tokens read (image tokens included).",
                                     registry=self.registry)
        self.image_tokens = Counter("vlmcli_image_tokens", "Image tokens read.", registry=self.registry)
        self.generated_tokens = Counter("vlmcli_generated_tokens", "Tokens generated.", registry=self.registry)
        self.queue_depth = Gauge("vlmcli_queue_waiting", "Requests waiting for the model.", registry=self.registry)
        self.latency = Histogram("vlmcli_request_seconds", "Time from a request's arrival to its last byte.",
                                 ["endpoint"], buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.queue_wait = Histogram("vlmcli_queue_wait_seconds", "Time a request waited for the model.",
                                    buckets=LATENCY_BUCKETS_S, registry=self.registry)

    def answered(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)

    def generated(self, prompt_tokens: int, image_tokens: int, new_tokens: int) -> None:
        self.prompt_tokens.inc(prompt_tokens)
        self.image_tokens.inc(image_tokens)
        self.generated_tokens.inc(new_tokens)

    def text(self) -> bytes:
        return generate_latest(self.registry)
