"""How the store reads an S3/MinIO failure: credentials, missing, transient or final.

:class:`sharpseek.data.s3_store.S3Store` retries what :func:`classify_failure` calls
``transient`` and translates the rest into the store's errors.
"""

from __future__ import annotations

import http.client

import urllib3
from minio.error import InvalidResponseError, S3Error, ServerError

__all__ = ["classify_failure"]

# Error codes, from the S3 and MinIO error references.
_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "SlowDownRead",
        "SlowDownWrite",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "XMinioServerNotInitialized",
    }
)
_TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
# What a dropped, refused or timed-out connection raises (urllib3 wraps most in HTTPError).
_CONNECTION_ERRORS = (
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


def classify_failure(exc: BaseException) -> str | None:
    """'auth', 'missing', 'no-bucket', 'transient', 'refused' (other S3 error) or None."""
    if isinstance(exc, S3Error):
        if exc.code in _AUTH_CODES:
            return "auth"
        if exc.code == "NoSuchKey":
            return "missing"
        if exc.code == "NoSuchBucket":
            return "no-bucket"
        status = getattr(exc.response, "status", None)
        if exc.code in _TRANSIENT_CODES or status in _TRANSIENT_STATUS:
            return "transient"
        return "refused"
    if isinstance(exc, ServerError):
        return "transient" if exc.status_code >= 500 else "refused"
    if isinstance(exc, InvalidResponseError):  # a non-XML answer, e.g. from a proxy
        status = getattr(exc, "_code", None)  # the HTTP status (the SDK keeps it private)
        return "transient" if status in _TRANSIENT_STATUS else "refused"
    if isinstance(exc, _CONNECTION_ERRORS):
        return "transient"
    return None
