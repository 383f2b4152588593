"""AWS-side faults at steady rates, for the calls of one stack's functions (the soak's).

Each is what the service answers under load or trouble, in its protocol's shape:
- DynamoDB: `ThrottlingException` (on-demand tables over their partition's throughput) and
  `InternalServerError` (500), on every operation; a 500 on a write may come after the write
  took effect, as DynamoDB's own error reference warns ("the request might have succeeded");
  conditional writes are delayed, which widens the windows in which concurrent writers race.
- SQS: `InternalError` (500) on any call (after the send took effect, sometimes), and
  SendMessageBatch answers with some entries `Failed` (`InternalError`, SenderFault false).
- S3: 503 `SlowDown`.
- Secrets Manager: `ThrottlingException`.
The harness's own calls are never faulted: only the functions' code is under test.
"""

import json
import random
import threading
import time

KINDS = ("dynamodb_throttle", "dynamodb_500", "dynamodb_500_after", "dynamodb_race_delay", "sqs_500", "sqs_500_after",
         "sqs_batch_partial", "s3_slowdown", "secrets_throttle")


class Faults:
    def __init__(self, rates, seed):
        unknown = set(rates) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        self.rates = {k: float(v) for k, v in rates.items()}
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {k: 0 for k in KINDS}

    def roll(self, kind):
        rate = self.rates.get(kind, 0.0)
        if rate <= 0:
            return False
        with self.lock:
            hit = self.rng.random() < rate
            if hit:
                self.counts[kind] += 1
        return hit

    def pick(self, items, kind):
        """Each item on its own roll (a batch's entries that fail)."""
        return [i for i in items if self.roll(kind)]


_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
# A transaction retried with its ClientRequestToken succeeds in DynamoDB (idempotent for ten
# minutes); moto ignores the token, so failing one after it applied would be harsher than AWS.
_FAILED_AFTER = _WRITES - {"TransactWriteItems"}


def before(faults, service, operation, body):
    """An answer to send instead of the request's, or ("after", answer) to send once moto has
    applied it, or None."""
    if service == "dynamodb":
        if faults.roll("dynamodb_throttle"):
            return _json(400, {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                               "message": "Rate of requests exceeds the allowed throughput."}, "1.0")
        if operation in _FAILED_AFTER and faults.roll("dynamodb_500_after"):
            return ("after", _json(500, {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                                         "message": "Internal server error"}, "1.0"))
        if faults.roll("dynamodb_500"):
            return _json(500, {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "Internal server error"}, "1.0")
        if operation in _WRITES and b"ConditionExpression" in (body or b"") and faults.roll("dynamodb_race_delay"):
            time.sleep(faults.rng.uniform(0.05, 0.4))
        return None
    if service == "sqs":
        error = _json(500, {"__type": "com.amazonaws.sqs#InternalError", "message": "We encountered an internal error. Please try again."},
                      "1.0", [("x-amzn-query-error", "InternalError;Receiver")])
        if operation.startswith("Send") and faults.roll("sqs_500_after"):
            return ("after", error)
        if faults.roll("sqs_500"):
            return error
        return None
    if service == "s3" and faults.roll("s3_slowdown"):
        data = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>gate</RequestId></Error>"
        return ("503 Slow Down", [("Content-Type", "application/xml"), ("Content-Length", str(len(data)))], data)
    if service == "secretsmanager" and faults.roll("secrets_throttle"):
        return _json(400, {"__type": "ThrottlingException", "Message": "Rate exceeded"}, "1.1")
    return None


def batch_partial(faults, req):
    """SendMessageBatch: (the request without the entries SQS fails, their Failed entries)."""
    entries = req.get("Entries", [])
    failing = faults.pick(entries, "sqs_batch_partial")
    if not failing or len(failing) == len(entries):
        return req, []
    ids = {e["Id"] for e in failing}
    failed = [{"Id": i, "SenderFault": False, "Code": "InternalError", "Message": "We encountered an internal error."} for i in sorted(ids)]
    return dict(req, Entries=[e for e in entries if e["Id"] not in ids]), failed


def _json(status, obj, version, extra=()):
    data = json.dumps(obj).encode()
    reason = {400: "Bad Request", 500: "Internal Server Error"}[status]
    headers = [("Content-Type", f"application/x-amz-json-{version}"), ("Content-Length", str(len(data)))] + list(extra)
    return (f"{status} {reason}", headers, data)
