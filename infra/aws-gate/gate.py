"""moto's server behind the rules AWS enforces: every request is authorized as AWS would.

    python infra/aws-gate/gate.py serve --port N --template template.yaml --denials FILE
    python infra/aws-gate/gate.py report --denials FILE

A test registers its stack (`POST /_gate/stacks/<id>`: the physical names of the template's
resources it created, parameter values) and runs each function's code with that function's
access key, `<stack id>.<LogicalFunctionId>` (the operator's, whose policy is the template's
`OperatorPolicy`: `<stack id>.Operator`). Every
request such a key signs is authorized against that principal's policies as `sam deploy` would
create them from template.yaml (read when the gate starts: never a copied list), resources and
`dynamodb:LeadingKeys` included, with the resource policies of the template (queue and bucket
policies) on top. A request IAM would deny gets the service's AccessDenied answer and a line in
the denials file naming the function, the action and the resource; `report` fails the test run
on any line a test did not ask for. Other keys (the harness that creates tables and reads
queues) pass unchecked, as moto alone would.

The policy evaluation itself is Principal Mapper's (NCC Group's IAM simulation, pip
`principalmapper`), not ours: explicit deny, then allow, as IAM's evaluation logic says.
"""

import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_requests  # noqa: E402
import faults  # noqa: E402
import sqs_rules  # noqa: E402

# Principal Mapper 1.1.5 (its last release) imports the ABCs from `collections`, which Python
# 3.10 moved to `collections.abc` only.
import collections  # noqa: E402
import collections.abc  # noqa: E402

collections.Mapping = collections.abc.Mapping
collections.MutableMapping = collections.abc.MutableMapping
from stack_policies import ACCOUNT, Template  # noqa: E402


class Stack:
    def __init__(self, stack_id, region):
        self.id = stack_id
        self.region = region
        self.resources = {}
        self.parameters = {}
        self.denials_expected = False
        # AWS-side faults for this stack's functions (faults.py), when the test asks for them.
        self.faults = None
        # Bumped by every registration: the policies resolved for the stack are cached until then.
        self.version = 0


def evaluate(statements, effect, check, context):
    from principalmapper.querying.local_policy_simulation import policy_has_matching_statement
    from principalmapper.util.case_insensitive_dict import CaseInsensitiveDict

    doc = {"Statement": statements}
    return policy_has_matching_statement(doc, effect, check.action, check.resource, CaseInsensitiveDict(context))


def resource_statements_for(principal_arn, statements):
    """The statements of a resource policy that apply to this principal (Principal "*" or its ARN)."""
    out = []
    for s in statements:
        p = s.get("Principal")
        if p == "*" or (isinstance(p, dict) and (p.get("AWS") == "*" or principal_arn in _list(p.get("AWS", []))
                                                   or f"arn:aws:iam::{ACCOUNT}:root" in _list(p.get("AWS", [])))):
            out.append(s)
    return out


def _list(x):
    return x if isinstance(x, list) else [x]


class Gate:
    def __init__(self, app, template, denials_path):
        self.app = app
        self.template = template
        self.denials_path = denials_path
        self.stacks = {}
        self.lock = threading.Lock()
        self.denials = []
        self.allowed = 0
        self.resolved = {}

    # -- registration --------------------------------------------------------------------

    def admin(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ["REQUEST_METHOD"]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[1] == "stacks" and method == "POST":
            req = json.loads(body or b"{}")
            with self.lock:
                stack = self.stacks.setdefault(parts[2], Stack(parts[2], req.get("region", "us-east-1")))
                for logical, physical in req.get("resources", {}).items():
                    if logical not in self.template.resources:
                        return _reply(start_response, 400, {"error": f"{logical} is not a resource of template.yaml"})
                    stack.resources[logical] = physical
                stack.parameters.update(req.get("parameters", {}))
                stack.version += 1
                if "denials_expected" in req:
                    stack.denials_expected = bool(req["denials_expected"])
                if "faults" in req:
                    try:
                        stack.faults = faults.Faults(req["faults"].get("rates", {}), req["faults"].get("seed", 0))
                    except ValueError as e:
                        return _reply(start_response, 400, {"error": str(e)})
            return _reply(start_response, 200, {"stack": stack.id, "principals": sorted(self.principals())})
        if len(parts) == 2 and parts[1] == "authorize" and method == "POST":
            # For stand-ins of other services (the soak's SQS): one check, decided and recorded
            # as the gate decides its own requests.
            req = json.loads(body or b"{}")
            who = self.principal_of(req.get("access_key", ""))
            if who is None:
                return _reply(start_response, 200, {"allowed": True, "reason": "not a function's key"})
            stack, principal = who
            check = aws_requests.Check(req["action"], req["resource"], req.get("context", {}))
            call = aws_requests.Call(req.get("service", "?"), req["access_key"], req.get("region", stack.region), req["action"], [check])
            denied = self.authorize(stack, principal, call)
            if denied is not None:
                self.record(stack, principal, denied[1], denied[2], denied[0])
                return _reply(start_response, 200, {"allowed": False, "reason": denied[0]})
            with self.lock:
                self.allowed += 1
            answer = {"allowed": True}
            if stack.faults is not None and req.get("service") == "sqs":
                op = req["action"].split(":", 1)[1]
                if op == "SendMessage" and req.get("entry_ids") and stack.faults.roll("sqs_500_after"):
                    answer["fault"] = "500_after"
                elif stack.faults.roll("sqs_500"):
                    answer["fault"] = "500"
                elif req.get("entry_ids") and len(req["entry_ids"]) > 1:
                    failing = stack.faults.pick(req["entry_ids"], "sqs_batch_partial")
                    if len(failing) < len(req["entry_ids"]):
                        answer["failed_entries"] = failing
            return _reply(start_response, 200, answer)
        if len(parts) == 2 and parts[1] == "faults" and method == "GET":
            from urllib.parse import parse_qs

            stack = self.stacks.get(parse_qs(environ.get("QUERY_STRING", "")).get("stack", [""])[0])
            counts = dict(stack.faults.counts) if stack is not None and stack.faults is not None else {}
            return _reply(start_response, 200, {"injected": counts})
        if len(parts) == 2 and parts[1] == "denials" and method == "GET":
            from urllib.parse import parse_qs

            q = parse_qs(environ.get("QUERY_STRING", ""))
            stack = q.get("stack", [None])[0]
            with self.lock:
                found = [d for d in self.denials if stack is None or d["stack"] == stack]
            return _reply(start_response, 200, {"denials": found, "allowed": self.allowed})
        return _reply(start_response, 404, {"error": f"no such gate endpoint: {method} {path}"})

    def principals(self):
        return list(self.template.functions) + list(self.template.extra_roles)

    # -- authorization -------------------------------------------------------------------

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/_gate/"):
            return self.admin(environ, start_response)
        body = b""
        if _needs_body(environ):
            length = environ.get("CONTENT_LENGTH")
            if length:
                body = environ["wsgi.input"].read(int(length))
            elif environ.get("wsgi.input_terminated"):
                # Chunked: werkzeug ends the stream at the last chunk. Without either, a read
                # would wait for a keep-alive connection to close.
                body = environ["wsgi.input"].read()
            environ["wsgi.input"] = _Body(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        who = self.caller(environ)
        if who is not None:
            stack, principal = who
            try:
                call = aws_requests.parse(environ, body)
            except aws_requests.Unparsed as e:
                call = None
                denied = (f"{principal} sent a request the gate cannot read ({e})", "?", "?", None)
            else:
                denied = self.authorize(stack, principal, call)
            if denied is not None:
                reason, action, resource, service = denied
                self.record(stack, principal, action, resource, reason)
                return _access_denied(start_response, service or (call.service if call else "s3"), reason)
            with self.lock:
                self.allowed += 1
            if call is not None and call.service == "sts" and call.operation == "GetCallerIdentity":
                return _caller_identity(start_response, stack, principal)
            if stack.faults is not None and call is not None:
                fault = faults.before(stack.faults, call.service, call.operation, body)
                if fault is not None:
                    if fault[0] == "after":
                        # Applied, then answered with an error: the caller cannot tell.
                        for _ in self.sqs_rules(environ, lambda *a, **k: None, body, stack):
                            pass
                        fault = fault[1]
                    status, headers, data = fault
                    start_response(status, headers)
                    return [data]
            return self.sqs_rules(environ, start_response, body, stack)
        return self.sqs_rules(environ, start_response, body, None)

    def sqs_rules(self, environ, start_response, body, stack):
        """SQS's limits on what is sent, which moto does not keep (sqs_rules.py), and the
        partial batch failures of the stack's faults."""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        cred = aws_requests.credential(environ)
        if not target.startswith("AmazonSQS.Send") or cred is None:
            return self.app(environ, start_response)
        operation = target.split(".", 1)[1]
        try:
            req = json.loads(body or b"{}")
            kept, failed = sqs_rules.check(operation, req, cred[1])
        except sqs_rules.Refusal as r:
            return _sqs_error(start_response, r.code, r.message)
        except ValueError:
            return self.app(environ, start_response)
        if stack is not None and stack.faults is not None and operation == "SendMessageBatch":
            kept, more = faults.batch_partial(stack.faults, kept)
            failed = failed + more
        if not failed:
            return self.app(environ, start_response)
        if not kept["Entries"]:
            return _reply_json(start_response, {"Successful": [], "Failed": failed})
        data = json.dumps(kept).encode()
        environ["wsgi.input"] = _Body(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        out = b"".join(self.app(environ, capture))
        if captured.get("status", "").startswith("200"):
            out = sqs_rules.merge_failed(out, failed)
        headers = [(k, v) for k, v in captured.get("headers", []) if k.lower() not in ("content-length", "x-amz-crc32")]
        start_response(captured.get("status", "500 Error"), headers + [("Content-Length", str(len(out)))])
        return [out]

    def caller(self, environ):
        cred = aws_requests.credential(environ)
        return None if cred is None else self.principal_of(cred[0])

    def principal_of(self, access_key):
        if "." not in access_key:
            return None
        stack_id, principal = access_key.split(".", 1)
        with self.lock:
            stack = self.stacks.get(stack_id)
        if stack is None or principal not in self.principals():
            return None
        return stack, principal

    def authorize(self, stack, principal, call):
        """None when IAM would allow every check of the call, else (reason, action, resource, service)."""
        role_arn = self.template.role_arn(principal, stack)
        key = (stack.id, principal, stack.version)
        with self.lock:
            cached = self.resolved.get(key)
        if cached is None:
            cached = (self.template.statements(principal, stack), self.template.resource_policies(stack))
            with self.lock:
                self.resolved[key] = cached
        statements, resource_policies = cached
        for check in call.checks:
            context = dict(check.context)
            context.update({
                "aws:PrincipalArn": role_arn,
                "aws:PrincipalAccount": ACCOUNT,
                "aws:RequestedRegion": call.region,
                # Every SDK client talks TLS to AWS; the gate is plain HTTP only on loopback.
                "aws:SecureTransport": "true",
            })
            who = f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{stack.id}-{principal}Role/{principal}"
            for resources, rstatements in resource_policies:
                if not any(_arn_match(r, check.resource) for r in resources):
                    continue
                applicable = resource_statements_for(role_arn, rstatements)
                if evaluate(applicable, "Deny", check, context):
                    return (f"{who} is not authorized to perform: {check.action} on resource: {check.resource} "
                            f"with an explicit deny in a resource-based policy", check.action, check.resource, call.service)
            if evaluate(statements, "Deny", check, context):
                return (f"{who} is not authorized to perform: {check.action} on resource: {check.resource} "
                        f"with an explicit deny in an identity-based policy", check.action, check.resource, call.service)
            if not evaluate(statements, "Allow", check, context):
                keys = context.get("dynamodb:LeadingKeys")
                extra = f" (dynamodb:LeadingKeys {keys})" if keys else ""
                return (f"{who} is not authorized to perform: {check.action} on resource: {check.resource}{extra} "
                        f"because no identity-based policy allows the {check.action} action", check.action, check.resource, call.service)
        return None

    def record(self, stack, principal, action, resource, reason):
        line = {
            "at": time.time(),
            "stack": stack.id,
            "function": principal,
            "action": action,
            "resource": resource,
            "reason": reason,
            "expected": stack.denials_expected,
        }
        with self.lock:
            self.denials.append(line)
            if self.denials_path:
                with open(self.denials_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(line) + "\n")


def _needs_body(environ):
    """JSON requests name their resources in the body; S3 in the path (object bodies stay untouched),
    except a multi-object delete."""
    cred = aws_requests.credential(environ)
    if cred and cred[2] == "s3":
        return environ["REQUEST_METHOD"] == "POST" and "delete" in environ.get("QUERY_STRING", "")
    return True


def _arn_match(resource_pattern, arn):
    from principalmapper.querying.local_policy_simulation import _matches_after_expansion

    return _matches_after_expansion(arn, resource_pattern)


class _Body:
    """The request body, read once by the gate and again by moto."""

    def __init__(self, data):
        import io

        self._b = io.BytesIO(data)

    def read(self, *a):
        return self._b.read(*a)

    def readline(self, *a):
        return self._b.readline(*a)

    def __iter__(self):
        return iter(self._b)


def _reply(start_response, status, obj):
    data = json.dumps(obj).encode()
    start_response(f"{status} {'OK' if status == 200 else 'Error'}", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _reply_json(start_response, obj):
    data = json.dumps(obj).encode()
    start_response("200 OK", [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(data)))])
    return [data]


def _sqs_error(start_response, code, message):
    data = json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": message}).encode()
    # The legacy (query API) code the SDKs read from this header: the batch errors carry SQS's
    # prefix, the message errors do not (SQS API reference, "Common errors" and each action's).
    legacy = code if code in ("InvalidMessageContents", "InvalidParameterValue") else f"AWS.SimpleQueueService.{code}"
    headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-query-error", f"{legacy};Sender"),
               ("Content-Length", str(len(data)))]
    start_response("400 Bad Request", headers)
    return [data]


def _access_denied(start_response, service, message):
    """AccessDenied as each service answers it (its protocol's error shape)."""
    if service == "s3":
        data = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>"
                f"<Message>{_xml(message)}</Message><RequestId>gate</RequestId></Error>").encode()
        headers = [("Content-Type", "application/xml")]
        status = "403 Forbidden"
    elif service == "sqs":
        data = json.dumps({"__type": "com.amazon.coral.service#AccessDeniedException", "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-query-error", "AccessDenied;Sender")]
        status = "403 Forbidden"
    elif service == "dynamodb":
        data = json.dumps({"__type": "com.amazon.coral.service#AccessDeniedException", "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.0")]
        status = "400 Bad Request"
    else:
        data = json.dumps({"__type": "AccessDeniedException", "Message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1")]
        status = "400 Bad Request"
    headers += [("Content-Length", str(len(data))), ("x-amzn-ErrorType", "AccessDeniedException")]
    start_response(status, headers)
    return [data]


def _caller_identity(start_response, stack, principal):
    """What STS answers a role session: its assumed-role ARN (moto knows no gate key)."""
    arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{stack.id}-{principal}Role/{principal}"
    data = ("<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>"
            f"<Arn>{_xml(arn)}</Arn><UserId>AROAGATE:{_xml(principal)}</UserId><Account>{ACCOUNT}</Account>"
            "</GetCallerIdentityResult><ResponseMetadata><RequestId>gate</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>").encode()
    start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))])
    return [data]


def _xml(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class DynamoWritesAtomic:
    """DynamoDB applies a write and its condition as one step: of two conditional writes to one
    item, the second sees the first's result (the condition-expressions page: "the write
    succeeds only if the condition is true"; writes to an item are serialized). moto checks a
    condition and then writes without a lock, so two request threads could both pass one
    condition (two instances both took the same mailbox slot). Writes go to moto one at a time
    here; reads do not wait."""

    WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB_") and target.split(".", 1)[-1] in self.WRITES:
            with self.lock:
                # The answer is produced inside the lock: moto writes while it builds it.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


def serve(args):
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    import moto_transactions

    moto_transactions.install()
    template = Template(args.template)
    moto_app = DomainDispatcherApplication(create_backend_app)
    gate = Gate(DynamoWritesAtomic(moto_app), template, args.denials)
    if args.denials:
        open(args.denials, "a").close()
    print(f"aws-gate: {len(template.functions)} functions' policies from {args.template}; moto on 127.0.0.1:{args.port}", flush=True)
    run_simple("127.0.0.1", args.port, gate, threaded=True, request_handler=MotoRequestHandler)


def report(args):
    """Exit 1 naming every denial a test did not ask for."""
    lines = []
    if os.path.exists(args.denials):
        with open(args.denials, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f if line.strip()]
    unexpected = [d for d in lines if not d["expected"]]
    for d in unexpected:
        print(f"IAM would deny {d['function']} {d['action']} on {d['resource']} (stack {d['stack']}): {d['reason']}")
    print(f"aws-gate: {len(lines)} denials, {len(lines) - len(unexpected)} of them asked for by their tests")
    sys.exit(1 if unexpected else 0)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--template", required=True)
    s.add_argument("--denials", default=None)
    r = sub.add_parser("report")
    r.add_argument("--denials", required=True)
    args = p.parse_args()
    serve(args) if args.cmd == "serve" else report(args)


if __name__ == "__main__":
    main()
