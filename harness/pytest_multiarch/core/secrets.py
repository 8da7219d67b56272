"""Build secrets declared in image.toml: where their values come from, and keeping those values
out of everything the harness prints or writes."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pytest_multiarch.core.errors import ConfigError

REDACTED = "***"
# Build-arg names that usually carry a secret: their values end up in `docker history`.
SECRET_LIKE_NAMES = ("*TOKEN*", "*PASSWORD*", "*PASSWD*", "*SECRET*", "*KEY*", "*CREDENTIAL*")


@dataclass(frozen=True)
class BuildSecret:
    """``secrets = { token = { env = "TOKEN" } }``: BuildKit secret ``token`` read from the
    environment variable ``TOKEN``, mounted by ``RUN --mount=type=secret,id=token``."""

    id: str
    env: str


def secret_values(secrets: Iterable[BuildSecret], where: str) -> dict[str, str]:
    """The value of each secret, by id, read from the environment now."""
    values = {}
    for secret in secrets:
        value = os.environ.get(secret.env)
        if value is None:
            raise ConfigError(
                f"{where}: secret {secret.id!r} reads environment variable {secret.env}, which "
                f"is not set; export it before running pytest"
            )
        values[secret.id] = value
    return values


def redact(text: str, secrets: Mapping[str, str] | None) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for value in (secrets or {}).values():
        if value:
            text = text.replace(value, REDACTED)
    return text


def present_secret_values(secrets: Iterable[BuildSecret]) -> list[str]:
    """The values of ``secrets`` whose environment variable is set (to redact them)."""
    return sorted({value for secret in secrets if (value := os.environ.get(secret.env))})


def redact_values(text: str, values: Iterable[str]) -> str:
    """``text`` with each of ``values`` replaced by ``***`` (longest first, so a value that
    contains another is replaced whole)."""
    for value in sorted(values, key=len, reverse=True):
        if value:
            text = text.replace(value, REDACTED)
    return text


class SecretLikeBuildArg(UserWarning):
    """An image.toml build arg whose name suggests a secret (it belongs in ``secrets``)."""


def secret_like_build_args(names: Iterable[str]) -> list[str]:
    """Build-arg names that look like they carry a secret."""
    return [
        name
        for name in names
        if any(fnmatch.fnmatchcase(name.upper(), pattern) for pattern in SECRET_LIKE_NAMES)
    ]
