"""Production overrides: secure cookies, HSTS, TLS redirect, Redis required, no embedded key."""

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from .base import API_KEY_PEPPER, CONSOLE_BASE_URL, SECRET_KEY, UPSTREAM_KEY_ENCRYPTION_KEYS, env

if SECRET_KEY.startswith("django-insecure") or len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("Set SECRET_KEY to a long random value in production.")
# Both default to values derived from SECRET_KEY, which would tie every stored API key hash and
# every encrypted upstream key to it: rotating SECRET_KEY must not lock everyone out.
if len(API_KEY_PEPPER) < 32:
    raise ImproperlyConfigured("Set API_KEY_PEPPER (32+ random characters) in production.")
if not UPSTREAM_KEY_ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "Set UPSTREAM_KEY_ENCRYPTION_KEYS (Fernet keys, newest first) in production."
    )
for _position, _key in enumerate(UPSTREAM_KEY_ENCRYPTION_KEYS.split(","), start=1):
    try:  # a malformed key would start fine, then fail at the first upstream key saved
        Fernet(_key.strip().encode())
    except ValueError:
        raise ImproperlyConfigured(
            f"UPSTREAM_KEY_ENCRYPTION_KEYS: key {_position} is not a Fernet key (32 url-safe "
            'base64-encoded bytes; make one with `python -c "from cryptography.fernet import '
            'Fernet; print(Fernet.generate_key().decode())"`).'
        ) from None

if not CONSOLE_BASE_URL.startswith("https://"):
    raise ImproperlyConfigured(
        "Set CONSOLE_BASE_URL to the console's https:// address (used in emails) in production."
    )

# Anyone who signs up becomes the Admin of an organization that may spend the operator's default
# upstream: closed unless the operator opens it.
CONSOLE_SIGNUP = env.str("CONSOLE_SIGNUP", default="invite")

DEBUG = False
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
