"""What SQS refuses and moto accepts, refused here for every caller.

Sources (SQS API reference and sqs-quotas.html): a message may hold only #x9, #xA, #xD,
#x20-#xD7FF, #xE000-#xFFFD and #x10000-#x10FFFF (`InvalidMessageContents`); a message is at
most the queue's MaximumMessageSize (1 MiB since 2025); a SendMessageBatch at most 1 MiB in all
(`BatchRequestTooLong`); a batch entry id at most 80 letters, digits, `-` and `_`
(`InvalidBatchEntryId`). A batch entry with characters SQS refuses fails alone, as
`InvalidMessageContents` with SenderFault, and its neighbours are sent (the soak's own SQS does
the same: infra/local/src/soak/sqs.rs).
"""

import json
import re

MAX_BATCH_BYTES = 1 << 20
_ENTRY_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_REFUSED = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def refused_character(text):
    m = _REFUSED.search(text)
    return None if m is None else f"#x{ord(m.group(0)):X}"


def _size(entry):
    """The bytes SQS counts: the body and every attribute's name, type and value."""
    n = len(entry.get("MessageBody", "").encode("utf-8", "surrogatepass"))
    for name, attr in (entry.get("MessageAttributes") or {}).items():
        n += len(name.encode()) + len(attr.get("DataType", "").encode())
        n += len((attr.get("StringValue") or "").encode("utf-8", "surrogatepass"))
        n += len(attr.get("BinaryValue") or "")
    return n


def _max_size(region, url):
    from moto.sqs.models import sqs_backends

    name = url.rstrip("/").rsplit("/", 1)[-1]
    q = sqs_backends["123456789012"][region].queues.get(name)
    return int(getattr(q, "maximum_message_size", MAX_BATCH_BYTES) or MAX_BATCH_BYTES) if q else MAX_BATCH_BYTES


class Refusal(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def check(operation, req, region):
    """For SendMessage: raises Refusal. For SendMessageBatch: raises Refusal for the whole
    request, else returns (the request without its refused entries, their Failed entries)."""
    if operation == "SendMessage":
        bad = refused_character(req.get("MessageBody", ""))
        if bad:
            raise Refusal("InvalidMessageContents", f"Invalid characters found. Invalid character: {bad}")
        limit = _max_size(region, req.get("QueueUrl", ""))
        if _size(req) > limit:
            raise Refusal("InvalidParameterValue", f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes.")
        return req, []
    if operation != "SendMessageBatch":
        return req, []
    entries = req.get("Entries", [])
    for e in entries:
        if not _ENTRY_ID.match(str(e.get("Id", ""))):
            raise Refusal("InvalidBatchEntryId", f"A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long: {e.get('Id')!r}")
    total = sum(_size(e) for e in entries)
    if total > MAX_BATCH_BYTES:
        raise Refusal("BatchRequestTooLong", f"Batch requests cannot be longer than {MAX_BATCH_BYTES} bytes. You have sent {total} bytes.")
    limit = _max_size(region, req.get("QueueUrl", ""))
    kept, failed = [], []
    for e in entries:
        bad = refused_character(e.get("MessageBody", ""))
        if bad:
            failed.append({"Id": e["Id"], "SenderFault": True, "Code": "InvalidMessageContents", "Message": f"Invalid characters found. Invalid character: {bad}"})
        elif _size(e) > limit:
            failed.append({"Id": e["Id"], "SenderFault": True, "Code": "InvalidParameterValue", "Message": f"Message must be shorter than {limit} bytes."})
        else:
            kept.append(e)
    return dict(req, Entries=kept), failed


def merge_failed(response_body, failed):
    """moto's SendMessageBatch answer with the refused entries added to `Failed`."""
    doc = json.loads(response_body or b"{}")
    doc.setdefault("Successful", [])
    doc["Failed"] = list(doc.get("Failed", [])) + failed
    return json.dumps(doc).encode()
