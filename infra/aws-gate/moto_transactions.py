"""TransactWriteItems at DynamoDB's cost: per item, not per table.

moto 5.2.5 deep-copies every table a transaction names before it applies the transaction, so it
can put the copies back if the transaction is cancelled (moto/dynamodb/models/__init__.py,
`transact_write_items`). That costs the whole table on every call: with a thousand integrations
in the state table, each save took seconds and the scale run's saves met the SDK's 15 s
operation timeout; and a copy taken while another request thread writes the same table fails
with "dictionary changed size during iteration". DynamoDB's transactions cost per item
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html).

This keeps moto's semantics (conditions, cancellation reasons, all-or-nothing) and snapshots only
the items the transaction names: on a cancellation each is put back as it was, or removed when
it did not exist. No behaviour a test can see changes, only the cost.
"""

import copy

_installed = False


class _KeepTables:
    """Stands in for the `copy` module inside moto's DynamoDB models: a Table is not copied (the
    wrapper below keeps the items instead); anything else is, as before."""

    def __init__(self, real):
        self._real = real

    def deepcopy(self, x, memo=None):
        from moto.dynamodb.models.table import Table

        if isinstance(x, Table):
            return x
        return self._real.deepcopy(x, memo)

    def __getattr__(self, name):
        return getattr(self._real, name)


def _key_of(backend, op):
    table = backend.tables.get(op.get("TableName"))
    if table is None:
        return None, None
    if "Item" in op:
        item = op["Item"]
        if table.hash_key_attr not in item:
            return table, None
        key = {table.hash_key_attr: item[table.hash_key_attr]}
        if table.range_key_attr is not None:
            if table.range_key_attr not in item:
                return table, None
            key[table.range_key_attr] = item[table.range_key_attr]
        return table, key
    return table, op.get("Key")


def install():
    global _installed
    if _installed:
        return
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend

    models.copy = _KeepTables(copy)
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        snapshots = []
        if isinstance(transact_items, list) and len(transact_items) <= 100:
            for item in transact_items:
                if not isinstance(item, dict) or len(item) != 1:
                    continue
                _, op = next(iter(item.items()))
                table, key = _key_of(self, op)
                if table is None or key is None:
                    continue
                try:
                    current = self.get_item(table.name, key)
                except Exception:
                    continue
                # The stored item itself (its JSON would turn nested binary values into bytes).
                snapshots.append((table.name, key, copy.deepcopy(current) if current is not None else None))
        try:
            return original(self, transact_items)
        except Exception:
            for table_name, key, before in reversed(snapshots):
                if before is None:
                    if self.get_item(table_name, key) is not None:
                        self.delete_item(table_name, key)
                    continue
                table = self.tables[table_name]
                if table.range_key_attr is not None:
                    table.items[before.hash_key][before.range_key] = before
                else:
                    table.items[before.hash_key] = before
            raise

    DynamoDBBackend.transact_write_items = transact_write_items
    _installed = True
