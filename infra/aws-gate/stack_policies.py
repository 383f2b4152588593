"""The functions' IAM policies as `sam deploy` would create them, read from template.yaml.

The template goes through the SAM translator (the one `sam deploy` uses, run offline as cfn-lint
runs it), so each function's role is exactly the role AWS would get: its inline statements and
the managed policies SAM attaches (basic execution, X-Ray, the SQS event source's). Intrinsics
are then resolved against the resources a test registered for its stack, so `!GetAtt
StateTable.Arn` names that test's table and nothing else.
"""

import copy
import json
import os

ACCOUNT = "123456789012"  # moto's default account: every ARN it returns names it
PARTITION = "aws"

# The AWS managed policies SAM attaches to function roles, as AWS publishes them (IAM console,
# "AWS managed policies", each policy's JSON; the same in the Managed Policy Reference Guide).
# An ARN not listed here stops the gate, so a new one is read before it is trusted.
MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"},
    ],
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        },
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        {
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ],
            "Resource": "*",
        },
    ],
}


class TemplateError(Exception):
    pass


def translate(template_path, region):
    """The template after the SAM transform: plain CloudFormation with the functions' roles."""
    from cfnlint.decode import decode_str
    from samtranslator.parser import parser
    from samtranslator.translator.translator import Translator

    with open(template_path, encoding="utf-8") as f:
        template, problems = decode_str(f.read())
    if problems:
        raise TemplateError(f"{template_path} does not parse: {problems}")
    template = json.loads(json.dumps(template))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            # The translator wants code in S3; where the code lives does not touch the role.
            resource["Properties"]["CodeUri"] = "s3://code/bootstrap.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    translator = Translator(managed_policy_map={}, sam_parser=parser.Parser())
    return translator.translate(sam_template=template, parameter_values={})


class Template:
    """The translated template: resources, parameters, conditions and each function's policy."""

    def __init__(self, template_path, region="us-east-1"):
        self.cfn = translate(template_path, region)
        self.resources = self.cfn["Resources"]
        self.parameters = {k: v.get("Default") for k, v in self.cfn.get("Parameters", {}).items()}
        self.list_parameters = {k for k, v in self.cfn.get("Parameters", {}).items() if v.get("Type") == "CommaDelimitedList"}
        self.conditions = self.cfn.get("Conditions", {})
        self.mappings = self.cfn.get("Mappings", {})
        self.functions = {}
        for name, r in self.resources.items():
            if r["Type"] != "AWS::Lambda::Function":
                continue
            role = r["Properties"].get("Role", {}).get("Fn::GetAtt", [None])[0]
            if role is None or role not in self.resources:
                raise TemplateError(f"{name} has no role of the template's own")
            self.functions[name] = role
        # Principals that are not a function's: the template's managed policies for people
        # (`OperatorPolicy` is the principal `Operator`), each as its policy document.
        self.extra_roles = {}
        for name, r in self.resources.items():
            if r["Type"] == "AWS::IAM::ManagedPolicy" and name.endswith("Policy"):
                self.extra_roles[name[: -len("Policy")]] = r["Properties"]["PolicyDocument"]

    def statements(self, principal, stack):
        """Every statement of the principal's identity policies, intrinsics resolved for the stack."""
        if principal in self.extra_roles:
            return _listify(Resolver(self, stack).resolve(self.extra_roles[principal])["Statement"])
        role = self.resources[self.functions[principal]]["Properties"]
        out = []
        for policy in role.get("Policies", []):
            doc = Resolver(self, stack).resolve(policy["PolicyDocument"])
            out.extend(_listify(doc["Statement"]))
        for arn in role.get("ManagedPolicyArns", []):
            arn = Resolver(self, stack).resolve(arn)
            if arn not in MANAGED:
                raise TemplateError(f"{principal}'s role has managed policy {arn}, which the gate does not know: add its document")
            out.extend(copy.deepcopy(MANAGED[arn]))
        return out

    def resource_policies(self, stack):
        """Resource-based policies (queue and bucket policies): (resource ARNs, statements)."""
        out = []
        r = Resolver(self, stack)
        for res in self.resources.values():
            if res["Type"] == "AWS::SQS::QueuePolicy":
                queues = [_queue_arn_of_url(u, stack.region) for u in _listify(r.resolve(res["Properties"]["Queues"]))]
                out.append((queues, _listify(r.resolve(res["Properties"]["PolicyDocument"])["Statement"])))
            elif res["Type"] == "AWS::S3::BucketPolicy":
                bucket = r.resolve(res["Properties"]["Bucket"])
                out.append(([f"arn:{PARTITION}:s3:::{bucket}"], _listify(r.resolve(res["Properties"]["PolicyDocument"])["Statement"])))
        return out

    def role_arn(self, principal, stack):
        return f"arn:{PARTITION}:iam::{ACCOUNT}:role/{stack.id}-{principal}Role"


def _listify(x):
    return x if isinstance(x, list) else [x]


def _queue_arn_of_url(url, region):
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return f"arn:{PARTITION}:sqs:{region}:{ACCOUNT}:{name}"


class Resolver:
    """CloudFormation intrinsics, resolved as CloudFormation would for one registered stack."""

    def __init__(self, template, stack):
        self.t = template
        self.stack = stack

    def unregistered(self, logical):
        # A resource the test did not create: an ARN no request can name.
        return f"unregistered:{self.stack.id}:{logical}"

    def ref(self, name):
        if name == "AWS::NoValue":
            return NO_VALUE
        pseudo = {
            "AWS::Region": self.stack.region,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": PARTITION,
            "AWS::StackName": self.stack.id,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.t.parameters:
            value = self.stack.parameters.get(name, self.t.parameters[name])
            if name in self.t.list_parameters:
                return value if isinstance(value, list) else str(value or "").split(",")
            return str(value)
        if name not in self.t.resources:
            raise TemplateError(f"Ref to {name}, which the template does not define")
        physical = self.stack.resources.get(name)
        if physical is None:
            return self.unregistered(name)
        rtype = self.t.resources[name]["Type"]
        if rtype == "AWS::SQS::Queue":
            return physical["url"]
        return physical["name"]

    def get_att(self, name, attr):
        rtype = self.t.resources.get(name, {}).get("Type")
        if rtype is None:
            raise TemplateError(f"GetAtt of {name}, which the template does not define")
        if rtype == "AWS::IAM::Role" and attr == "Arn":
            principal = name[: -len("Role")] if name.endswith("Role") else name
            return self.t.role_arn(principal, self.stack)
        physical = self.stack.resources.get(name)
        if physical is None:
            return self.unregistered(name)
        n, r = physical["name"], self.stack.region
        arns = {
            "AWS::DynamoDB::Table": f"arn:{PARTITION}:dynamodb:{r}:{ACCOUNT}:table/{n}",
            "AWS::SQS::Queue": f"arn:{PARTITION}:sqs:{r}:{ACCOUNT}:{n}",
            "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{n}",
        }
        if attr == "Arn" and rtype in arns:
            return arns[rtype]
        if attr == "QueueName" and rtype == "AWS::SQS::Queue":
            return n
        return self.unregistered(f"{name}.{attr}")

    def condition(self, name):
        return bool(self.resolve(self.t.conditions[name]))

    def sub(self, text, variables):
        out, i = [], 0
        while i < len(text):
            j = text.find("${", i)
            if j < 0:
                out.append(text[i:])
                break
            out.append(text[i:j])
            k = text.index("}", j)
            expr = text[j + 2 : k]
            if expr.startswith("!"):
                out.append("${" + expr[1:] + "}")
            elif expr in variables:
                out.append(str(self.resolve(variables[expr])))
            elif "." in expr and not expr.startswith("AWS::"):
                res, attr = expr.split(".", 1)
                out.append(self.get_att(res, attr))
            else:
                out.append(self.ref(expr))
            i = k + 1
        return "".join(out)

    def resolve(self, node):
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                parts = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(parts[0], parts[1])
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                return self.sub(text, variables)
            if key == "Fn::If":
                cond, a, b = arg
                return self.resolve(a if self.condition(cond) else b)
            if key == "Fn::Equals":
                a, b = self.resolve(arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if key == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::FindInMap":
                m, a, b = self.resolve(arg)
                return self.t.mappings[m][a][b]
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(x) for x in self.resolve(items))
            if key == "Fn::Select":
                idx, items = self.resolve(arg)
                return items[int(idx)]
            if key == "Fn::Split":
                sep, text = self.resolve(arg)
                return text.split(sep)
        resolved = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}


# `!Ref AWS::NoValue`: the property it stands for is removed, as CloudFormation removes it.
NO_VALUE = object()
