"""The Ray Jobs REST API, with timeouts: what the Ray backend and the managed head both talk
to (no ``import ray`` needed; a silent address is an error, never a hang)."""

from __future__ import annotations

import json

DEFAULT_TIMEOUT_S = 10.0


class RayClient:
    """A few Ray Jobs REST calls with timeouts: a silent address is an error, never a hang."""

    def __init__(self, address: str, timeout: float | None = None):
        self.address = address.rstrip("/")
        self.timeout = timeout or DEFAULT_TIMEOUT_S

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        import urllib.error
        import urllib.request

        from runspec.backends.base import BackendError

        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.address}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read().decode()
                return response.status, (json.loads(text) if text.strip() else {})
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, {"message": text}
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            # A POST that timed out may have arrived: the caller keeps it as an intent.
            sent = method == "POST" and isinstance(reason, TimeoutError | OSError) and not \
                isinstance(reason, ConnectionRefusedError)
            raise BackendError(f"Ray at {self.address} did not answer within {self.timeout:g} s "
                               f"({reason})", "is the Ray head running? (set env.address or "
                               "leave it unset to let runspec start one)",
                               ambiguous=sent) from None
