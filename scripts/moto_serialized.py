"""moto_server with request handling serialized: one request at a time.

moto's DynamoDB TransactWriteItems rolls a failed transaction back by restoring a copy of the
whole table taken when it started, which silently undoes every write other requests made in the
meantime (moto 5.2.5, models/__init__.py). Real DynamoDB isolates transactions; the fault suite
hammers transactions concurrently and would report revalidations lost by moto. Connections are
still accepted concurrently (keep-alive works); only the handling is serialized. Run by
scripts/local-aws.mjs with moto's own arguments.
"""
import sys
import threading

from moto.moto_server import werkzeug_app

_lock = threading.Lock()
_dispatch = werkzeug_app.DomainDispatcherApplication.__call__


def _serialized(self, environ, start_response):
    with _lock:
        return list(_dispatch(self, environ, start_response))


werkzeug_app.DomainDispatcherApplication.__call__ = _serialized

from moto.server import main  # noqa: E402  (after the patch)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
