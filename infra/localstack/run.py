"""Start LocalStack 4.14.0's host runtime for keyhost: `python -m localstack.runtime.main` plus
three things, so scripts/services.sh and the per-test-binary fixtures behave the same:

1. Safe defaults for settings the caller did not set (see infra/localstack/NOTES.md):
   KMS only, no DNS server, no analytics, no downloads, never "in docker" mode.
2. The default (twisted) gateway ignores the host part of GATEWAY_LISTEN and listens on
   0.0.0.0 ("TODO: interface = host?" in localstack/runtime/server/twisted.py). Make it listen
   on the configured address, e.g. GATEWAY_LISTEN=127.0.0.1:4566. (GATEWAY_SERVER=hypercorn binds
   correctly but was ~40% slower for KMS calls and hung on SIGTERM.)
3. LocalStack builds a service catalog index (~3 s) on the first request of every fresh
   FILESYSTEM_ROOT. Build it once into the venv and copy it into each instance's static libs dir.

Usage: GATEWAY_LISTEN=127.0.0.1:PORT FILESYSTEM_ROOT=DIR .venv-localstack/bin/python infra/localstack/run.py
"""

import os
import shutil
import sys

for name, value in {
    "SERVICES": "kms",
    "EAGER_SERVICE_LOADING": "1",  # load KMS at startup: health says "running" when usable
    "OVERRIDE_IN_DOCKER": "0",  # this machine may be a container; don't act like LocalStack's image
    "DNS_ADDRESS": "0",  # no DNS server on port 53
    "DISABLE_EVENTS": "1",  # no analytics
    "SKIP_SSL_CERT_DOWNLOAD": "1",  # generate the self-signed cert locally
}.items():
    os.environ.setdefault(name, value)

from twisted.internet import endpoints  # noqa: E402

from localstack import config  # noqa: E402  (reads the environment on import)
from localstack.aws.spec import _get_catalog_filename, build_service_index_cache  # noqa: E402
from localstack.runtime.main import main  # noqa: E402

# -- 2. bind the twisted gateway to the configured interface
_host_for_port = {hp.port: hp.host for hp in config.GATEWAY_LISTEN}
_TCP4ServerEndpoint = endpoints.TCP4ServerEndpoint


def _tcp4_on_configured_host(reactor, port, *args, **kwargs):
    kwargs.setdefault("interface", _host_for_port.get(port, ""))
    return _TCP4ServerEndpoint(reactor, port, *args, **kwargs)


endpoints.TCP4ServerEndpoint = _tcp4_on_configured_host


# -- 3. prebuilt service catalog
def seed_service_catalog():
    name = _get_catalog_filename()  # includes the LocalStack and botocore versions
    target = os.path.join(config.dirs.static_libs, name)
    if os.path.exists(target):
        return
    shared = os.path.join(sys.prefix, "localstack-catalog", name)
    if not os.path.exists(shared):
        os.makedirs(os.path.dirname(shared), exist_ok=True)
        tmp = f"{shared}.{os.getpid()}.tmp"  # instances may start concurrently
        build_service_index_cache(tmp)
        os.replace(tmp, shared)
    os.makedirs(config.dirs.static_libs, exist_ok=True)
    shutil.copyfile(shared, target)


if __name__ == "__main__":
    try:
        seed_service_catalog()
    except Exception as e:  # only an optimisation: LocalStack builds it lazily otherwise
        print(f"run.py: could not seed the service catalog: {e}", file=sys.stderr)
    main()
