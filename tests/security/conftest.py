"""Fixtures for the security tests (defined in tokens.py next to the token helpers)."""

from .tokens import ec_key, make_authenticator, other_ec_key, redis_url, rsa_key

__all__ = ["ec_key", "make_authenticator", "other_ec_key", "redis_url", "rsa_key"]
