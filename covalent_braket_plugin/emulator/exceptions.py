"""Braket service errors: one class per AWS error code, with its HTTP status."""

from __future__ import annotations


class BraketError(Exception):
    """Base of every error the emulated Braket service returns."""

    code = "InternalServiceException"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationException(BraketError):
    code, status = "ValidationException", 400


class AccessDeniedException(BraketError):
    code, status = "AccessDeniedException", 403


class ResourceNotFoundException(BraketError):
    code, status = "ResourceNotFoundException", 404


class ConflictException(BraketError):
    code, status = "ConflictException", 409


class ServiceQuotaExceededException(BraketError):
    code, status = "ServiceQuotaExceededException", 402


class ThrottlingException(BraketError):
    code, status = "ThrottlingException", 429


class InternalServiceException(BraketError):
    code, status = "InternalServiceException", 500


class DeviceOfflineException(BraketError):
    code, status = "DeviceOfflineException", 424


class DeviceRetiredException(BraketError):
    code, status = "DeviceRetiredException", 410


class ServiceUnavailableException(BraketError):
    """Not a Braket error code: what a client meets where Braket has no endpoint (it cannot
    connect there; the emulator, on one endpoint, answers this instead)."""

    code, status = "ServiceUnavailable", 503


class ExpiredTokenException(BraketError):
    code, status = "ExpiredTokenException", 403
