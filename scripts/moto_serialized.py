"""moto_server with request handling serialized: one request at a time.

moto's DynamoDB TransactWriteItems rolls a failed transaction back by restoring a copy of the
whole table taken when it started, which silently undoes every write other requests made in the
meantime (moto 5.2.5, models/__init__.py). Real DynamoDB isolates transactions; the fault suite
hammers transactions concurrently and would report revalidations lost by moto. Connections are
still accepted concurrently (keep-alive works); only the handling is serialized. Run by
scripts/local-aws.mjs with moto's own arguments.

That backup is also what made moto slow as a table grew (a deep copy of the whole table for every
transaction: the differential suite's table of thousands of items took seconds per revalidation).
With one request at a time, a backup of the items the transaction touches is exact: the whole-table
copy is skipped and those items are put back when the transaction is cancelled.

moto's Query on a table's key also sorts the whole table to pick one partition's items (Table.query
→ all_items), so every feed poll cost time in proportion to the table: ~38 ms a query once the
differential suite had stored a few thousand items, and most of moto's time. Real DynamoDB reads the
partition; so does the query here (same results: the partition's items, filtered and sorted by
moto's own code).
"""
import bisect
import sys
import threading

from moto.moto_server import werkzeug_app

_lock = threading.Lock()
_dispatch = werkzeug_app.DomainDispatcherApplication.__call__


def _serialized(self, environ, start_response):
    with _lock:
        return list(_dispatch(self, environ, start_response))


werkzeug_app.DomainDispatcherApplication.__call__ = _serialized

import copy  # noqa: E402

from moto.dynamodb import models as _ddb  # noqa: E402


class _NoTableCopy:
    """`copy` as moto's DynamoDB models see it: a Table is not copied (see the module doc)."""

    @staticmethod
    def deepcopy(x, memo=None):
        return x if isinstance(x, _ddb.Table) else copy.deepcopy(x, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


_ddb.copy = _NoTableCopy()
_transact = _ddb.DynamoDBBackend.transact_write_items


def _key_of(backend, op_type, op):
    table = backend.tables.get(op.get("TableName"))
    if table is None:
        return None, None
    if op_type == "Put":
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return table.name, key
    return table.name, op.get("Key")


def _transact_restoring_items(self, transact_items):
    saved = []
    for item in transact_items[:100]:
        op_type, op = next(iter(item.items()))
        name, key = _key_of(self, op_type, op)
        if name is None or key is None:
            continue
        try:
            old = self.get_item(name, key)
        except Exception:  # noqa: BLE001  (an invalid key: moto raises it below)
            continue
        saved.append((name, key, old.to_json()["Attributes"] if old else None))
    try:
        return _transact(self, transact_items)
    except Exception:
        for name, key, old in reversed(saved):
            if old is None:
                self.delete_item(name, key)
            else:
                self.put_item(name, copy.deepcopy(old))
        raise


_ddb.DynamoDBBackend.transact_write_items = _transact_restoring_items

from moto.dynamodb.models import table as _table  # noqa: E402

_query = _table.Table.query


def _query_one_partition(self, hash_key, *args, **kwargs):
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name or not self.range_key_attr or hash_key is None:
        return _query(self, hash_key, *args, **kwargs)
    partition = self.items.get(hash_key)
    items = sorted(partition.values(), key=lambda x: x.range_key) if partition else []
    comparison = args[0] if args else kwargs.get("range_comparison")
    bounds = args[1] if len(args) > 1 else kwargs.get("range_objs")
    if comparison in (">", "GT", ">=", "GE", "BETWEEN") and bounds:
        # Only items at or above the lower bound can match (moto still applies the condition).
        items = items[bisect.bisect_left(items, bounds[0], key=lambda x: x.range_key):]
    self.all_items = lambda: items  # one request at a time: nothing else sees this
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        del self.all_items


_table.Table.query = _query_one_partition

from moto.server import main  # noqa: E402  (after the patch)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
