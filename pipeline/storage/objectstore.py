"""S3-compatible object storage as the data home (`VAST_PIPELINE_HOME=s3://bucket/prefix`).

Why this module: pyarrow's `S3FileSystem` reads and lists well but cannot send the
conditional headers (`If-None-Match: *`, `If-Match: <etag>`) that let two collectors share
a bucket without a shared lock server, and DuckDB's `httpfs` extension is downloaded at run
time (impossible offline). So, all configured once from the standard AWS variables:
- reads and listings: `pyarrow.fs.S3FileSystem` (`arrow_filesystem`);
- every write: one boto3 `PutObject` (atomic per object), conditional when asked;
- DuckDB: an fsspec `s3fs` filesystem registered on the connection (`register_on`).

Configuration: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
`AWS_REGION` (or `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`) for
MinIO, R2, Ceph...; without keys, boto3's default chain (profiles, instance roles) applies.
Secrets are kept out of repr and never put in a message: errors name the bucket, the
endpoint and the error code only.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import pyarrow.fs as pafs

from pipeline.core.errors import ConfigError, DataError
from pipeline.core.retry import Backoff, retry

S3_EXTRA = "pip install 'vast-pipeline[s3]'"
# How long a per-day lease is valid without its holder releasing it (a killed collector's
# lease is taken over after this). One day's write takes seconds, and writes under a lease
# are conditional on what the holder read, so a takeover during a slow write ends in a
# detected conflict and a retry, never an overwrite. Shorter than a waiter's patience
# (`Store.lock`'s 300 s), so the collection after a killed one waits and then lands.
DEFAULT_LEASE_SECONDS = 120.0
SINGLE_WRITER_ENV = "VAST_PIPELINE_SINGLE_WRITER"
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403",
           "InvalidToken", "ExpiredToken", "AuthorizationHeaderMalformed"}
_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_UNSUPPORTED = {"NotImplemented", "501"}


def _lease_poll(timeout: float) -> Backoff:
    """A held lease is asked again after 0.1 s, 0.2 s ... up to 1 s (with jitter, so
    waiters spread out), until `timeout` is spent."""
    return Backoff(base=0.1, cap=1.0, jitter=0.5, total_seconds=timeout)


class _LeaseHeld(Exception):
    """The lease is held by another writer (a retryable failure, internal to `lease`)."""


class WriteConflict(DataError):
    """A conditional write lost a race: another writer changed the object first."""


@dataclass(frozen=True)
class S3Config:
    """Where the home is and how to reach it; credentials are never shown."""

    bucket: str
    prefix: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def where(self) -> str:
        """The bucket and endpoint, for messages (no credentials)."""
        return f"s3://{self.bucket}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")


def is_remote(home: str) -> bool:
    return "://" in str(home) and not str(home).startswith("file://")


def parse_home(uri: str, env: Mapping[str, str] | None = None, *,
               source: str = "VAST_PIPELINE_HOME") -> S3Config:
    """The S3 configuration of an `s3://bucket/prefix` home; ConfigError for anything else,
    naming `source` (where the home was read: the variable or the config file's key)."""
    env = os.environ if env is None else env
    parsed = urlparse(uri)
    if parsed.scheme not in ("s3", "s3a"):
        raise ConfigError(f"Home {parsed.scheme}://... ({source}) is not supported: use a local "
                          "folder or an s3://bucket/prefix URI (S3, MinIO, R2, Ceph...).")
    if "@" in parsed.netloc or parsed.query or parsed.fragment:
        raise ConfigError("Put S3 credentials and options in the AWS_* variables, not in "
                          f"{source}: give it as s3://bucket/prefix only.")
    if not parsed.netloc:
        raise ConfigError(f"{source} needs a bucket: give it as s3://bucket/prefix.")
    variable = "AWS_ENDPOINT_URL_S3" if env.get("AWS_ENDPOINT_URL_S3") else "AWS_ENDPOINT_URL"
    endpoint = (env.get(variable) or "").strip()
    if endpoint and urlparse(endpoint).scheme not in ("http", "https"):
        raise ConfigError(f"{variable} {endpoint!r} is not an http(s) URL: fix it.")
    region = (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip()
    return S3Config(
        bucket=parsed.netloc, prefix=parsed.path.strip("/"),
        endpoint_url=endpoint.rstrip("/") or None,
        region=region or ("us-east-1" if endpoint else None),
        access_key=env.get("AWS_ACCESS_KEY_ID") or None,
        secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        session_token=env.get("AWS_SESSION_TOKEN") or None,
    )


def arrow_filesystem(config: S3Config) -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem for reads and listings (it ignores AWS_ENDPOINT_URL, so the
    endpoint is passed explicitly)."""
    options: dict[str, Any] = {"region": config.region, "allow_bucket_creation": False,
                               "allow_bucket_deletion": False}
    if config.access_key and config.secret_key:
        options.update(access_key=config.access_key, secret_key=config.secret_key,
                       session_token=config.session_token)
    if config.endpoint_url:
        endpoint = urlparse(config.endpoint_url)
        options.update(endpoint_override=endpoint.netloc + endpoint.path, scheme=endpoint.scheme,
                       force_virtual_addressing=False)
    return pafs.S3FileSystem(**{k: v for k, v in options.items() if v is not None})


def _client_kwargs(config: S3Config) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"region_name": config.region, "endpoint_url": config.endpoint_url}
    if config.access_key and config.secret_key:
        kwargs.update(aws_access_key_id=config.access_key,
                      aws_secret_access_key=config.secret_key,
                      aws_session_token=config.session_token)
    return kwargs


def fsspec_filesystem(config: S3Config) -> Any:
    """The `s3fs` filesystem DuckDB reads `s3://` through (no extension download)."""
    try:
        import s3fs
    except ImportError:
        raise ConfigError(f"An s3:// home needs the S3 support: {S3_EXTRA}.") from None
    kwargs = _client_kwargs(config)
    client_kwargs = {"region_name": kwargs.pop("region_name")}
    options: dict[str, Any] = {"endpoint_url": kwargs.pop("endpoint_url"),
                               "client_kwargs": client_kwargs, "skip_instance_cache": True}
    if "aws_access_key_id" in kwargs:
        options.update(key=kwargs["aws_access_key_id"], secret=kwargs["aws_secret_access_key"],
                       token=kwargs["aws_session_token"])
    if config.endpoint_url:
        options["config_kwargs"] = {"s3": {"addressing_style": "path"}}
    return s3fs.S3FileSystem(**options)


def register_on(con: Any, home: str) -> None:
    """Let DuckDB connection `con` read `s3://` paths of `home` (nothing to do when local).

    Every connection that reads the history or the model Parquet must go through this: the
    build (`pipeline.warehouse.dbfile`), `sql`, the reports and the FOCUS export (the
    read-only connection of `pipeline.warehouse.query`) all open theirs there.
    """
    if is_remote(home):
        con.register_filesystem(fsspec_filesystem(parse_home(home)))


class ObjectStore:
    """Writes, ETags, leases and the conditional-write probe of one S3 home (via boto3)."""

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self._client: Any = None
        self._conditional_ok: bool | None = None

    def __getstate__(self) -> dict[str, Any]:  # boto3 clients do not pickle (process pools)
        return {"config": self.config, "_client": None, "_conditional_ok": self._conditional_ok}

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise ConfigError(f"An s3:// home needs the S3 support: {S3_EXTRA}.") from None
            style = {"addressing_style": "path"} if self.config.endpoint_url else {}
            self._client = boto3.session.Session().client(
                "s3", config=Config(s3=style, retries={"max_attempts": 5, "mode": "standard"}),
                **_client_kwargs(self.config))
        return self._client

    # -- errors ------------------------------------------------------------------------
    def _explain(self, exc: Exception, action: str, key: str = "") -> Exception:
        """A one-sentence error for a failed call (never the server's text: it may echo keys)."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = self.config.where
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            # If-Match on an object deleted meanwhile answers 404: a lost race as well (but
            # a missing bucket is a setup mistake, said below, not a race to retry).
            gone = action == "write" and code != "NoSuchBucket" and (
                code == "NoSuchKey" or status == "404")
            if code in _CONFLICT or status in _CONFLICT or gone:
                return WriteConflict(f"Another writer changed {key} first; the write was not "
                                     "applied.")
            if code in _DENIED or status == "403":
                return ConfigError(f"The object store {where} refused the credentials "
                                   f"({code or status}): check AWS_ACCESS_KEY_ID, "
                                   "AWS_SECRET_ACCESS_KEY and the bucket policy.")
            if code == "NoSuchBucket" or (action == "open" and status == "404"):
                return ConfigError(f"Bucket {self.config.bucket} does not exist at "
                                   f"{self.config.endpoint_url or 'AWS'}: create it or fix "
                                   "VAST_PIPELINE_HOME.")
            return DataError(f"The object store {where} failed to {action} {key} "
                             f"({code or status}).")
        if isinstance(exc, NoCredentialsError):
            return ConfigError(f"No credentials for {where}: export AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY (or configure an AWS profile).")
        if isinstance(exc, BotoCoreError):
            return ConfigError(f"Cannot reach the object store {where} ({type(exc).__name__}): "
                               "check AWS_ENDPOINT_URL and the network.")
        return exc

    def _call(self, method: str, action: str, key: str = "", **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(Bucket=self.config.bucket, **params)
        except (ClientError, BotoCoreError) as exc:
            raise self._explain(exc, action, key) from None

    def check_access(self) -> None:
        """Fail early with one sentence when the bucket is missing or the keys are refused.

        A one-key listing of the home's prefix, not HeadBucket: a policy that grants
        ListBucket on the prefix only (the least privilege) must pass."""
        prefix = f"{self.config.prefix}/" if self.config.prefix else ""
        self._call("list_objects_v2", "open", self.config.bucket, Prefix=prefix, MaxKeys=1)

    # -- objects (keys are full pyarrow paths: "<bucket>/<key>") -------------------------
    def _key(self, path: str) -> str:
        bucket, _, key = path.partition("/")
        if bucket != self.config.bucket:
            raise ValueError(f"{path} is not in bucket {self.config.bucket}")
        return key

    def put(self, path: str, data: bytes, *, if_match: str | None = None,
            if_none_match: bool = False) -> str:
        """PUT `data` whole at `path` (atomic per object); returns the new ETag.

        `if_none_match` creates only if absent, `if_match` replaces only that version;
        losing either race raises WriteConflict (HTTP 412) and changes nothing.
        """
        params: dict[str, Any] = {"Key": self._key(path), "Body": data}
        if if_match is not None:
            params["IfMatch"] = if_match
        elif if_none_match:
            params["IfNoneMatch"] = "*"
        return str(self._call("put_object", "write", path, **params)["ETag"])

    def etag(self, path: str) -> str | None:
        """The current ETag of `path`, None when absent."""
        from botocore.exceptions import ClientError

        try:
            return str(self.client.head_object(Bucket=self.config.bucket,
                                               Key=self._key(path))["ETag"])
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._explain(exc, "read", path) from None

    def get(self, path: str) -> tuple[bytes, str] | None:
        """(content, ETag) of `path` read together, None when absent."""
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.config.bucket, Key=self._key(path))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._explain(exc, "read", path) from None
        return answer["Body"].read(), str(answer["ETag"])

    def delete(self, path: str) -> None:
        self._call("delete_object", "delete", path, Key=self._key(path))

    # -- conditional writes ------------------------------------------------------------
    def require_conditional_writes(self, probe_dir: str) -> None:
        """Refuse to coordinate writers on a store that ignores conditional writes.

        The probe creates one object twice with `If-None-Match: *`: a store that honours
        it refuses the second PUT. One that does not would let two collectors overwrite
        each other silently, so locking is refused unless the user promises a single
        writer (`VAST_PIPELINE_SINGLE_WRITER=1`).
        """
        if self._conditional_ok is None:
            self._conditional_ok = self._probe(f"{probe_dir}/_probe-{uuid.uuid4().hex}")
        if not self._conditional_ok and os.environ.get(SINGLE_WRITER_ENV) != "1":
            raise ConfigError(
                f"The object store {self.config.where} ignores conditional writes "
                "(If-None-Match), so two collectors could overwrite each other: use a store "
                f"that supports them, or run one collector only and set {SINGLE_WRITER_ENV}=1.")

    def _probe(self, path: str) -> bool:
        try:
            self.put(path, b"probe", if_none_match=True)
            try:
                self.put(path, b"probe", if_none_match=True)
            except WriteConflict:
                return True
            return False
        except DataError as exc:
            if any(code in str(exc) for code in _UNSUPPORTED):
                return False
            raise
        finally:
            self.delete(path)

    @contextmanager
    def lease(self, path: str, *, timeout: float, seconds: float, what: str) -> Iterator[None]:
        """Hold the lease object at `path`: created with `If-None-Match: *`; an expired one
        (its holder was killed) is taken over with `If-Match` on its ETag, so of two
        waiters exactly one wins. Released by deleting it if it is still ours."""
        owner = uuid.uuid4().hex

        def take() -> None:
            if not self._try_lease(path, owner, seconds):
                raise _LeaseHeld

        try:
            retry(take, _lease_poll(timeout), retry_on=lambda e: isinstance(e, _LeaseHeld))
        except _LeaseHeld:
            raise DataError(f"{what} stayed locked by another writer for {timeout:.0f} s "
                            f"(lease {path}); try again when it has finished.") from None
        try:
            yield
        finally:
            # Releasing must never hide the error of the work it guarded; a lease left
            # behind expires by itself.
            with suppress(Exception):
                current = self.get(path)
                if current is not None and json.loads(current[0]).get("owner") == owner:
                    self.delete(path)

    def _try_lease(self, path: str, owner: str, seconds: float) -> bool:
        body = json.dumps({"owner": owner, "host": socket.gethostname(), "pid": os.getpid(),
                           "expires_at": time.time() + seconds}).encode()
        try:
            self.put(path, body, if_none_match=True)
            return True
        except WriteConflict:
            pass
        current = self.get(path)
        if current is None:  # released in between: the next attempt creates it
            return False
        try:
            expires_at = float(json.loads(current[0])["expires_at"])
        except (ValueError, KeyError, TypeError):
            expires_at = 0.0  # an unreadable lease protects nothing
        if expires_at > time.time():
            return False
        try:
            self.put(path, body, if_match=current[1])
            return True
        except WriteConflict:
            return False
