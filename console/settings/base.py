import os
import secrets
from pathlib import Path

import environ
from celery.schedules import crontab

from console.logformat import PLAIN_FORMAT

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# An explicit env file (e.g. `.env.example` for `make deploy-check`) wins over a local `.env`.
_env_file = env.str("CONSOLE_ENV_FILE", default=str(BASE_DIR / ".env"))
if Path(_env_file).is_file():
    environ.Env.read_env(_env_file, overwrite=True)

DEBUG = env.bool("DEBUG", default=False)


def demo_secret_key(path: Path) -> str:
    """The embedded mode's SECRET_KEY: made once per checkout, on first use (`make run`), and kept
    in `path` (var/, ignored by git), so no two demo installs share one. Its `django-insecure-`
    prefix makes production settings refuse it. Two processes starting at once agree: the first
    to link its file in place wins."""
    try:
        key = path.read_text().strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    key = "django-insecure-demo-" + secrets.token_urlsafe(48)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        draft.write_text(key + "\n")
        draft.chmod(0o600)
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
        return path.read_text().strip()
    except OSError:  # read-only checkout: a key for this process only (production refuses it)
        return key


# Without SECRET_KEY (`make run`): this checkout's own demo key. Production settings refuse it.
SECRET_KEY = env.str("SECRET_KEY", default="") or demo_secret_key(
    BASE_DIR / "var" / "demo-secret-key"
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
# How many proxies in front of the console append to X-Forwarded-For (0: none, the header is
# ignored). Login rate limits, audit rows and the gateway's limits use the client's address
# (core/client_ip.py); allauth reads its own setting, kept equal.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT
# Where users reach the console: every link in an email is made from it (core/emails.py).
CONSOLE_BASE_URL = env.str("CONSOLE_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
# The console's name in emails ("Hello from Console", "[Console] …").
CONSOLE_SITE_NAME = env.str("CONSOLE_SITE_NAME", default="Console")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "django_htmx",
    "django_tables2",
    "django_filters",
    "django_celery_beat",
    "csp",
    "core",
    "audit",
    "orgs",
    "members",
    "apikeys",
    "usage",
    "billing",
    "gateway",
    "adminapi",
    "console",
]

MIDDLEWARE = [
    # /healthz, /readyz, /metrics: before the host check and the HTTPS redirect (probes).
    "console.health.HealthEndpointsMiddleware",
    # One log line per request, with its id (console/request_log.py).
    "console.request_log.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Content-Security-Policy (django-csp): scripts from this site only, no inline script.
    "csp.middleware.CSPMiddleware",
    "audit.context.AuditOriginMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"
ASGI_APPLICATION = "console.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.shell",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several server processes share the demo database: wait for the write lock, don't fail.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # A database that does not answer is reported in seconds (/readyz, a start), not minutes.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis plays cache, Celery broker and the gateway's hot path. `make run` points REDIS_URL at a
# stand-in (console/standin_redis.py) that its web workers share. With no REDIS_URL at all (a
# bare `manage.py` command) the cache lives in the database and the hot path in the process.
REDIS_URL = env.str("REDIS_URL", default="")
# No Celery worker or beat (`make run`): the web processes drain the usage stream and flush
# last-used stamps themselves, in background threads.
WEB_RUNS_BACKGROUND_WORK = env.bool("WEB_RUNS_BACKGROUND_WORK", default=not REDIS_URL)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="console"),
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "console_cache",
        }
    }

AUTH_USER_MODEL = "members.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"

# django-allauth: email login, verification, MFA (TOTP + recovery codes), rate limits.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="mandatory")
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_SIGNUP_FORM_CLASS = "members.forms.SignupNameForm"
# The sign-in form takes ?email= (an invitation's Sign in link), as the sign-up form does.
ACCOUNT_FORMS = {"login": "members.account_forms.LoginWithEmailForm"}
# Knows invitation links: an invitee signing up with the invited address is already verified.
ACCOUNT_ADAPTER = "members.adapters.AccountAdapter"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{CONSOLE_SITE_NAME}] "
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
# Failed logins are limited per address and per account (the login's email), so one attacker
# is stopped without locking every user out (the address is the client's: TRUSTED_PROXY_COUNT).
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}  # merged with allauth's defaults
# Security notices to the account's address: a second factor added or removed, password or
# email changed (allauth's notification emails, sent through core/emails.py).
ACCOUNT_EMAIL_NOTIFICATIONS = True
MFA_TOTP_ISSUER = env.str("MFA_TOTP_ISSUER", default="Console")

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Console <console@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# Sessions last SESSION_COOKIE_AGE seconds from sign-in (default 12 hours), then sign in again.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 3600)
# Creating Admin keys, changing roles or an upstream asks for the password again unless given in
# the last ACCOUNT_REAUTHENTICATION_TIMEOUT seconds (members/reauth.py).
CONSOLE_REAUTHENTICATION = env.bool("CONSOLE_REAUTHENTICATION", default=True)
ACCOUNT_REAUTHENTICATION_TIMEOUT = env.int("ACCOUNT_REAUTHENTICATION_TIMEOUT", default=300)
# Content-Security-Policy: every script is a file of this site (templates carry no inline script
# or handler: static/console/console.js), nothing is framed, forms post here only. Inline style
# attributes stay allowed (templates use a few; they cannot run code).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],  # data: for the TOTP QR code (allauth)
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

DJANGO_TABLES2_TEMPLATE = "django_tables2/console.html"
DJANGO_TABLES2_TABLE_ATTRS = {
    # .table-stack: rows become cards at phone width (static/console/console.css).
    "class": "table table-hover align-middle mb-0 table-stack",
    # Sort links swap just the table; see templates/django_tables2/console.html.
    "thead": {
        "hx-boost": "true",
        "hx-target": "#table-region",
        "hx-swap": "outerHTML",
        "hx-push-url": "true",
    },
}

# Celery. Without a broker (`make run`) tasks run in-process.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool(
    "CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL or WEB_RUNS_BACKGROUND_WORK
)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
# Worker processes per `celery worker` (None: one per CPU).
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=None)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
# Periodic tasks live here, reviewed with the code, rather than in data migrations: beat's
# DatabaseScheduler copies them into django_celery_beat's table (visible in the admin) at start.
CELERY_BEAT_SCHEDULE = {
    "apikeys-hygiene": {
        "task": "apikeys.tasks.key_hygiene",
        "schedule": crontab(hour=6, minute=0),
    },
    "apikeys-flush-last-used": {"task": "apikeys.tasks.flush_key_last_used", "schedule": 60.0},
    # Pending invitations past their 7 days count as expired anyway; this writes the status.
    "members-expire-invitations": {
        "task": "members.tasks.expire_invitations",
        "schedule": crontab(hour=5, minute=30),
    },
    # Spending alerts whose email could not be sent yet (the claim stays; only sending retries).
    "billing-retry-alerts": {"task": "billing.tasks.retry_spend_alerts", "schedule": 60.0},
    # Spending evaluations follow each ingestion batch; this sweep catches any that were lost.
    "billing-sweep-spending": {"task": "billing.tasks.sweep_spending", "schedule": 60.0},
    # Invoices of the months that ended (each organization's own time zone): hourly, idempotent.
    "billing-close-periods": {
        "task": "billing.tasks.close_billing_periods",
        "schedule": crontab(minute=15),
    },
    # Raw usage events: partitions made ahead of time, retention applied by dropping them.
    "usage-maintain-partitions": {
        "task": "usage.tasks.maintain_usage_partitions",
        "schedule": crontab(hour=0, minute=15),
    },
    "usage-apply-retention": {
        "task": "usage.tasks.apply_usage_retention",
        "schedule": crontab(hour=3, minute=45),
    },
    # Spikes: each organization's yesterday, checked in the hour after it ends in its own zone
    # (a daily check per organization; later runs of the same day only retry unsent emails).
    "usage-detect-spikes": {
        "task": "usage.tasks.detect_usage_spikes",
        "schedule": crontab(minute=20),
    },
    # Usage that did not pass through the gateway, from Anthropic's Admin API (decision 0013).
    "usage-import-anthropic": {
        "task": "usage.tasks.import_anthropic_usage",
        "schedule": crontab(minute="*/15"),
    },
    # The weekly digest: Monday from 07:00 in each organization's zone, claimed once a week.
    "usage-weekly-digests": {
        "task": "usage.tasks.send_weekly_usage_digests",
        "schedule": crontab(minute=5),
    },
}

# Console behaviour.
# API keys are stored as HMAC-SHA-256(API_KEY_PEPPER, key). Unset, the pepper is derived from
# SECRET_KEY (apikeys/keyformat.py). Changing it, or SECRET_KEY while it is unset, invalidates
# every API key: set it once in production and keep it.
API_KEY_PEPPER = env.str("API_KEY_PEPPER", default="")
CONSOLE_DEFAULT_MEMBER_LIMIT = env.int("CONSOLE_DEFAULT_MEMBER_LIMIT", default=50)
# Who may create an account: "open" (anyone, who may then create organizations; `make run`) or
# "invite" (production's default): only addresses with a pending invitation sign up, and only
# site operators create organizations (`manage.py create_organization`, or staff in the UI).
CONSOLE_SIGNUP = env.str("CONSOLE_SIGNUP", default="open")
# Where the usage import reads Anthropic's Admin API (the simulator's address in tests and demos).
USAGE_IMPORT_BASE_URL = env.str("USAGE_IMPORT_BASE_URL", default="https://api.anthropic.com")
CONSOLE_SUPPORT_CONTACT = env.str("CONSOLE_SUPPORT_CONTACT", default="your console's operator")

# Logs go to stderr: plain lines, or one JSON object a line with LOG_FORMAT=json (log shippers;
# console/logformat.py). REQUEST_LOG=false silences the line per request of the console
# (console.requests) and of the gateway (gateway.requests).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")

if LOG_FORMAT not in ("plain", "json"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("LOG_FORMAT must be plain or json.")
REQUEST_LOG = env.bool("REQUEST_LOG", default=True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": PLAIN_FORMAT},
        "json": {"()": "console.logformat.JsonFormatter"},
    },
    "filters": {
        "redact_invitations": {"()": "console.log_redaction.RedactInvitationTokens"},
        "one_line_forbidden": {"()": "console.log_forbidden.OneLineForbidden"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact_invitations"],  # "Bad Request: /invitations/<token>/"
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # A page a role does not reach: one INFO line, not a WARNING with a traceback.
        "django.request": {"filters": ["one_line_forbidden"]},
        **(
            {}
            if REQUEST_LOG
            else {
                "console.requests": {"level": "WARNING"},
                "gateway.requests": {"level": "WARNING"},
            }
        ),
    },
}
# Celery workers and beat keep these handlers (and LOG_FORMAT) instead of installing their own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CSRF_FAILURE_VIEW = "console.views.site.csrf_failure"

# Gateway (/v1). Upstream keys are encrypted with MultiFernet: comma-separated Fernet keys, newest
# first (gateway/crypto.py); unset, one key derived from SECRET_KEY.
UPSTREAM_KEY_ENCRYPTION_KEYS = env.str("UPSTREAM_KEY_ENCRYPTION_KEYS", default="")
# The upstream of an organization without its own configuration. `make run` points it at the
# simulator it starts (or at api.anthropic.com when ANTHROPIC_API_KEY is set); unset, such an
# organization's requests are refused until an Admin configures an upstream.
GATEWAY_DEFAULT_UPSTREAM_URL = env.str("GATEWAY_DEFAULT_UPSTREAM_URL", default="")
GATEWAY_DEFAULT_UPSTREAM_KEY = env.str("GATEWAY_DEFAULT_UPSTREAM_KEY", default="")
# The monthly cap, in US dollars, of every organization whose requests go out through the
# default upstream (the operator's key), unless an operator raises it for that organization in
# the Django admin (Billing → Shared upstream allowances). Empty: no such cap.
GATEWAY_DEFAULT_UPSTREAM_MONTHLY_CAP = env.str("GATEWAY_DEFAULT_UPSTREAM_MONTHLY_CAP", default="")
# Threads per web process serving the Admin API (/v1/organizations/...; adminapi/asgi.py): at
# most this many admin requests per process at once, each thread keeping its database connection.
ADMIN_API_THREADS = env.int("ADMIN_API_THREADS", default=4)
# Who charges payment methods (credit recharges): a dotted path to a class with `charge(...)`
# (billing/payments.py). The built-in one records pending charges for finance to collect.
BILLING_PAYMENT_PROVIDER = env.str(
    "BILLING_PAYMENT_PROVIDER", default="billing.payments.BuiltinProvider"
)
# Hosts an organization's upstream base URL may name (the default upstream's host is always
# allowed). Organization Admins are anyone who signs up: without this list the console would
# send requests, with their keys, to any address it can reach. "*" allows every host.
GATEWAY_UPSTREAM_HOSTS = env.list("GATEWAY_UPSTREAM_HOSTS", default=["api.anthropic.com"])
# Hosts an upstream base URL may name with plain http:// (every other host needs https://): a
# simulator or proxy on this machine or a private network the operator vouches for.
GATEWAY_LOCAL_UPSTREAM_HOSTS = env.list("GATEWAY_LOCAL_UPSTREAM_HOSTS", default=[])
# Celery workers ingest the usage stream in a thread (usage/worker.py); false turns that off in
# a worker (then run `manage.py consume_usage` somewhere).
USAGE_INGEST_IN_WORKER = env.bool("USAGE_INGEST_IN_WORKER", default=True)
# Events per ingestion batch (one XREADGROUP, one transaction); see bench/bench_ingest.py.
USAGE_INGEST_BATCH = env.int("USAGE_INGEST_BATCH", default=10_000)
# Ingestion loops per Celery worker (each a consumer of the group, with its own connection).
USAGE_INGEST_THREADS = env.int("USAGE_INGEST_THREADS", default=2)
# Requests without a valid key (missing, malformed, unknown), per client address: past this many
# in a window of this many seconds, answered 429 until the window ends (gateway/unauthenticated.py).
GATEWAY_AUTH_FAILURE_LIMIT = env.int("GATEWAY_AUTH_FAILURE_LIMIT", default=60)
GATEWAY_AUTH_FAILURE_WINDOW = env.int("GATEWAY_AUTH_FAILURE_WINDOW", default=60)
# Usage events wait here (JSON lines) while Redis is unreachable, and are replayed when it returns.
USAGE_SPOOL_DIR = env.str("USAGE_SPOOL_DIR", default=str(BASE_DIR / "var" / "usage-spool"))
# Each usage event is appended to a journal on local disk (USAGE_SPOOL_DIR/journal/) before the
# gateway's answer completes, so a killed gateway process loses no answered request
# (docs/decisions/0007-usage-journal.md). The directory must be local to the machine (flock).
USAGE_JOURNAL = env.bool("USAGE_JOURNAL", default=True)
# A model without a price row is priced as this model id or family (e.g. "claude-opus-4-1") and
# flagged on the dashboard; empty: the most expensive price on file. Never $0 (usage/pricing.py).
USAGE_FALLBACK_PRICE_MODEL = env.str("USAGE_FALLBACK_PRICE_MODEL", default="")
# Prefix of the gateway's Redis keys (usage stream, spend counters): lets several consoles, or
# concurrent test runs, share one Redis.
GATEWAY_REDIS_NAMESPACE = env.str("GATEWAY_REDIS_NAMESPACE", default="")

# Operations (console/health.py). /readyz fails when the oldest usage event waiting in the stream
# is older than this many seconds (ingestion falling behind or stopped).
READYZ_MAX_USAGE_LAG = env.int("READYZ_MAX_USAGE_LAG", default=300)
# /metrics answers a scraper that sends `Authorization: Bearer <METRICS_TOKEN>`, or connects
# from one of these networks without passing through a proxy (no X-Forwarded-For).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])
