"""What an AWS request asks IAM for: the actions, resources and condition keys AWS authorizes.

Each rule follows the service's "Actions, resources, and condition keys" page in the Service
Authorization Reference: a batch is authorized as its single action (SQS `SendMessageBatch` as
`sqs:SendMessage`), a DynamoDB transaction as each of its items' actions, a Query on an index
against the index's ARN, and `dynamodb:LeadingKeys` is the partition key value(s) the request
touches (the index's own partition key for an index query).
"""

import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

from stack_policies import ACCOUNT, PARTITION


@dataclass
class Check:
    action: str
    resource: str
    context: dict = field(default_factory=dict)


@dataclass
class Call:
    service: str
    access_key: str
    region: str
    operation: str
    checks: list


class Unparsed(Exception):
    pass


_CRED = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/aws4_request")


def credential(environ):
    """(access key id, region, service) from the SigV4 Authorization header or presigned query."""
    m = _CRED.search(environ.get("HTTP_AUTHORIZATION", ""))
    if m:
        return m.group(1), m.group(2), m.group(3)
    q = parse_qs(environ.get("QUERY_STRING", ""))
    cred = q.get("X-Amz-Credential", [None])[0]
    if cred:
        parts = cred.split("/")
        if len(parts) >= 4:
            return parts[0], parts[2], parts[3]
    return None


def parse(environ, body):
    cred = credential(environ)
    if cred is None:
        return None
    key, region, service = cred
    if service == "dynamodb":
        op, checks = _dynamodb(environ, body, region)
    elif service == "sqs":
        op, checks = _sqs(environ, body, region)
    elif service == "s3":
        op, checks = _s3(environ, body, region)
    elif service == "secretsmanager":
        op, checks = _secrets(environ, body, region)
    elif service == "sts" and _query_action(environ, body) == "GetCallerIdentity":
        # "No permissions are required to perform this operation" (STS API reference).
        op, checks = "GetCallerIdentity", []
    else:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        op = target.rsplit(".", 1)[-1] if target else _query_action(environ, body) or "Unknown"
        checks = [Check(f"{service}:{op}", "*")]
    return Call(service, key, region, op, checks)


def _json(body):
    try:
        return json.loads(body or b"{}")
    except ValueError as e:
        raise Unparsed(f"not JSON: {e}")


def _query_action(environ, body):
    q = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in q:
        return q["Action"][0]
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        form = parse_qs(body.decode("utf-8", "replace"))
        if "Action" in form:
            return form["Action"][0]
    return None


# ---- DynamoDB ----------------------------------------------------------------------------

def _table_arn(region, table, index=None):
    arn = f"arn:{PARTITION}:dynamodb:{region}:{ACCOUNT}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


def _table(region, name):
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[ACCOUNT][region].tables.get(name)


def _hash_key(region, table, index=None):
    t = _table(region, table)
    if t is None:
        return None
    if index is None:
        return t.hash_key_attr
    for idx in list(t.indexes) + list(t.global_indexes):
        if idx.name == index:
            for k in idx.schema:
                if k["KeyType"] == "HASH":
                    return k["AttributeName"]
    return None


def _scalar(av):
    """A DynamoDB attribute value as IAM sees it in a condition key: its text."""
    if not isinstance(av, dict) or len(av) != 1:
        return None
    (t, v), = av.items()
    if t in ("S", "N", "B"):
        return str(v)
    return None


def _leading(region, table, key_or_item, index=None):
    hk = _hash_key(region, table, index)
    if hk is None or key_or_item is None or hk not in key_or_item:
        return []
    v = _scalar(key_or_item[hk])
    return [] if v is None else [v]


_EQ = re.compile(r"(#?[A-Za-z0-9_]+)\s*=\s*(:[A-Za-z0-9_]+)")


def _query_leading(region, req):
    table, index = req.get("TableName"), req.get("IndexName")
    hk = _hash_key(region, table, index)
    if hk is None:
        return []
    names = req.get("ExpressionAttributeNames", {})
    values = req.get("ExpressionAttributeValues", {})
    expr = req.get("KeyConditionExpression")
    if expr:
        for name, value in _EQ.findall(expr):
            if names.get(name, name) == hk and value in values:
                v = _scalar(values[value])
                return [] if v is None else [v]
        return []
    cond = req.get("KeyConditions", {}).get(hk)
    if cond and cond.get("AttributeValueList"):
        v = _scalar(cond["AttributeValueList"][0])
        return [] if v is None else [v]
    return []


def _ddb_check(action, region, table, leading, index=None):
    ctx = {"dynamodb:LeadingKeys": leading} if leading else {}
    return Check(f"dynamodb:{action}", _table_arn(region, table, index), ctx)


def _dynamodb(environ, body, region):
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    op = target.split(".", 1)[-1]
    req = _json(body)
    table = req.get("TableName")
    if op in ("GetItem", "DeleteItem", "UpdateItem"):
        return op, [_ddb_check(op, region, table, _leading(region, table, req.get("Key")))]
    if op == "PutItem":
        return op, [_ddb_check(op, region, table, _leading(region, table, req.get("Item")))]
    if op == "Query":
        index = req.get("IndexName")
        return op, [_ddb_check(op, region, table, _query_leading(region, req), index)]
    if op == "Scan":
        return op, [_ddb_check(op, region, table, [], req.get("IndexName"))]
    if op == "TransactWriteItems":
        checks = []
        for item in req.get("TransactItems", []):
            for kind, action in (("Put", "PutItem"), ("Update", "UpdateItem"), ("Delete", "DeleteItem"), ("ConditionCheck", "ConditionCheckItem")):
                if kind in item:
                    part = item[kind]
                    t = part.get("TableName")
                    checks.append(_ddb_check(action, region, t, _leading(region, t, part.get("Item") or part.get("Key"))))
        return op, checks
    if op == "TransactGetItems":
        checks = []
        for item in req.get("TransactItems", []):
            part = item.get("Get", {})
            t = part.get("TableName")
            checks.append(_ddb_check("GetItem", region, t, _leading(region, t, part.get("Key"))))
        return op, checks
    if op == "BatchGetItem":
        checks = []
        for t, spec in req.get("RequestItems", {}).items():
            leading = sorted({k for key in spec.get("Keys", []) for k in _leading(region, t, key)})
            checks.append(_ddb_check("BatchGetItem", region, t, leading))
        return op, checks
    if op == "BatchWriteItem":
        checks = []
        for t, writes in req.get("RequestItems", {}).items():
            leading = set()
            for w in writes:
                leading.update(_leading(region, t, w.get("PutRequest", {}).get("Item") or w.get("DeleteRequest", {}).get("Key")))
            checks.append(_ddb_check("BatchWriteItem", region, t, sorted(leading)))
        return op, checks
    if table:
        return op, [Check(f"dynamodb:{op}", _table_arn(region, table))]
    return op, [Check(f"dynamodb:{op}", "*")]


# ---- SQS ---------------------------------------------------------------------------------

_SQS_BATCH = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage", "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}


def _queue_arn(region, url_or_name):
    name = url_or_name.rstrip("/").rsplit("/", 1)[-1]
    return f"arn:{PARTITION}:sqs:{region}:{ACCOUNT}:{name}"


def _sqs(environ, body, region):
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        op = target.split(".", 1)[-1]
        req = _json(body)
    else:
        op = _query_action(environ, body) or "Unknown"
        form = parse_qs(body.decode("utf-8", "replace"))
        req = {k: v[0] for k, v in form.items()}
        if "QueueUrl" not in req and environ.get("PATH_INFO", "/") not in ("", "/"):
            req["QueueUrl"] = environ["PATH_INFO"]
    action = "sqs:" + _SQS_BATCH.get(op, op)
    if op in ("ListQueues",):
        return op, [Check(action, "*")]
    queue = req.get("QueueUrl") or req.get("QueueName")
    if not queue:
        return op, [Check(action, "*")]
    return op, [Check(action, _queue_arn(region, queue))]


# ---- S3 ----------------------------------------------------------------------------------

def _s3(environ, body, region):
    method = environ["REQUEST_METHOD"]
    path = unquote(environ.get("PATH_INFO", "/"))
    q = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    parts = path.lstrip("/").split("/", 1)
    bucket = parts[0]
    key = parts[1] if len(parts) > 1 else ""
    if not bucket:
        return "ListBuckets", [Check("s3:ListAllMyBuckets", "*")]
    barn = f"arn:{PARTITION}:s3:::{bucket}"
    oarn = f"{barn}/{key}"
    if not key:
        sub = next((s for s in ("policy", "lifecycle", "versioning", "encryption", "publicAccessBlock", "tagging", "acl", "cors", "notification") if s in q), None)
        if method == "PUT":
            if sub:
                return f"PutBucket{sub[0].upper()}{sub[1:]}", [Check(f"s3:PutBucket{sub[0].upper()}{sub[1:]}", barn)]
            return "CreateBucket", [Check("s3:CreateBucket", barn)]
        if method == "DELETE":
            return "DeleteBucket", [Check("s3:DeleteBucket", barn)]
        if method == "POST" and "delete" in q:
            keys = re.findall(rb"<Key>(.*?)</Key>", body or b"")
            return "DeleteObjects", [Check("s3:DeleteObject", f"{barn}/{k.decode('utf-8', 'replace')}") for k in keys]
        if "uploads" in q:
            return "ListMultipartUploads", [Check("s3:ListBucketMultipartUploads", barn)]
        if "versions" in q:
            return "ListObjectVersions", [Check("s3:ListBucketVersions", barn)]
        if sub and method == "GET":
            return f"GetBucket{sub}", [Check(f"s3:GetBucket{sub[0].upper()}{sub[1:]}", barn)]
        if method == "GET" and "location" in q:
            return "GetBucketLocation", [Check("s3:GetBucketLocation", barn)]
        return "ListObjects", [Check("s3:ListBucket", barn)]
    if method in ("PUT", "POST"):
        if "tagging" in q:
            return "PutObjectTagging", [Check("s3:PutObjectTagging", oarn)]
        checks = [Check("s3:PutObject", oarn)]
        source = environ.get("HTTP_X_AMZ_COPY_SOURCE")
        if source:
            src = unquote(source.split("?", 1)[0]).lstrip("/")
            checks.append(Check("s3:GetObject", f"arn:{PARTITION}:s3:::{src}"))
        op = "UploadPart" if "partNumber" in q else "CreateMultipartUpload" if "uploads" in q else "CompleteMultipartUpload" if "uploadId" in q else "PutObject"
        return op, checks
    if method == "DELETE":
        if "uploadId" in q:
            return "AbortMultipartUpload", [Check("s3:AbortMultipartUpload", oarn)]
        return "DeleteObject", [Check("s3:DeleteObject", oarn)]
    if method in ("GET", "HEAD"):
        if "uploadId" in q:
            return "ListParts", [Check("s3:ListMultipartUploadParts", oarn)]
        if "tagging" in q:
            return "GetObjectTagging", [Check("s3:GetObjectTagging", oarn)]
        return ("HeadObject" if method == "HEAD" else "GetObject"), [Check("s3:GetObject", oarn)]
    return method, [Check(f"s3:{method}", oarn)]


# ---- Secrets Manager ---------------------------------------------------------------------

def _secret_arn(region, secret_id):
    if secret_id.startswith("arn:"):
        return secret_id
    from moto.secretsmanager.models import secretsmanager_backends

    secrets = secretsmanager_backends[ACCOUNT][region].secrets
    found = secrets.get(secret_id) if secret_id in secrets else None
    if found is not None:
        return found.arn
    # Secrets Manager appends six random characters to a new secret's name in its ARN.
    return f"arn:{PARTITION}:secretsmanager:{region}:{ACCOUNT}:secret:{secret_id}-AbCdEf"


def _secrets(environ, body, region):
    op = environ.get("HTTP_X_AMZ_TARGET", "").split(".", 1)[-1]
    req = _json(body)
    sid = req.get("SecretId") or req.get("Name")
    if op in ("ListSecrets", "BatchGetSecretValue", "GetRandomPassword"):
        return op, [Check(f"secretsmanager:{op}", "*")]
    if not sid:
        return op, [Check(f"secretsmanager:{op}", "*")]
    return op, [Check(f"secretsmanager:{op}", _secret_arn(region, sid))]
