"""The Python peer of the end-to-end benchmark: the poller a user would write instead.

MSAL for the token, requests for Graph, boto3 for Secrets Manager, SQS and DynamoDB. One run
reads the secret, polls /security/alerts_v2 over the window (ordered, $top pages, following
@odata.nextLink), sends each alert as an intake envelope like m365-ingest's (SendMessageBatch:
10 entries, at most 1 MiB a batch, failed entries sent again a bounded number of times) and
writes its watermark to DynamoDB after every page. It prints {"delivered": N, "pages": P}.

Everything comes from the environment, set by `poll-bench --e2e`:
  PEER_SECRET_ID, PEER_TENANT_ID, PEER_CLIENT_ID, PEER_QUEUE_URL, PEER_STATE_TABLE,
  PEER_LOOKBACK_SECS, PEER_DELAY_SECS, PEER_PAGE_SIZE,
  LOGIN_BASE_URL, GRAPH_BASE_URL, EXTRA_CA_BUNDLE_FILE, AWS_ENDPOINT_URL[_SQS]
"""

import datetime
import json
import os
import sys
from urllib.parse import urlsplit

import boto3
import msal
import requests

MAX_BATCH_BYTES = 1024 * 1024
SEND_ATTEMPTS = 5


def graph_time(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Sink:
    """SendMessageBatch in batches of 10 entries and at most 1 MiB."""

    def __init__(self, sqs, queue_url):
        self.sqs, self.queue_url, self.entries, self.size, self.sent = sqs, queue_url, [], 0, 0

    def add(self, body: str):
        n = len(body.encode())
        if n > MAX_BATCH_BYTES:
            raise RuntimeError(f"an envelope of {n} bytes is over SQS's 1 MiB limit")
        if len(self.entries) == 10 or self.size + n > MAX_BATCH_BYTES:
            self.flush()
        self.entries.append({"Id": str(len(self.entries)), "MessageBody": body})
        self.size += n

    def flush(self):
        pending = self.entries
        for _ in range(SEND_ATTEMPTS):
            if not pending:
                break
            r = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=pending)
            self.sent += len(r.get("Successful", []))
            failed = {f["Id"] for f in r.get("Failed", [])}
            pending = [e for e in pending if e["Id"] in failed]
        if pending:
            raise RuntimeError(f"{len(pending)} messages failed {SEND_ATTEMPTS} times")
        self.entries, self.size = [], 0


def main() -> int:
    env = os.environ
    login, graph = env["LOGIN_BASE_URL"].rstrip("/"), env["GRAPH_BASE_URL"].rstrip("/")
    tenant, client_id = env["PEER_TENANT_ID"], env["PEER_CLIENT_ID"]
    secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=env["PEER_SECRET_ID"])["SecretString"])

    session = requests.Session()
    session.trust_env = False
    session.verify = env["EXTRA_CA_BUNDLE_FILE"]
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret["client_secret"],
        authority=f"{login}/{tenant}",
        instance_discovery=f"{login}/common/discovery/instance",
        http_client=session,
    )

    def token() -> str:
        result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
        if "access_token" not in result:
            raise RuntimeError(f"no token: {result.get('error')}: {result.get('error_description')}")
        return result["access_token"]

    now = datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(seconds=int(env["PEER_LOOKBACK_SECS"]))
    end = now - datetime.timedelta(seconds=int(env["PEER_DELAY_SECS"]))
    polled_at = graph_time(now)
    sqs = boto3.client("sqs")
    table = boto3.client("dynamodb")
    sink = Sink(sqs, env["PEER_QUEUE_URL"])
    origin = urlsplit(graph)
    url = f"{graph}/v1.0/security/alerts_v2"
    params = {
        "$filter": f"lastUpdateDateTime ge {graph_time(start)} and lastUpdateDateTime lt {graph_time(end)}",
        "$orderby": "lastUpdateDateTime asc",
        "$top": env.get("PEER_PAGE_SIZE", "1000"),
    }
    delivered = pages = 0
    watermark = graph_time(start)
    while url:
        r = session.get(url, params=params, headers={"Authorization": f"Bearer {token()}", "Prefer": "include-unknown-enum-members"}, timeout=60)
        r.raise_for_status()
        page = r.json()
        pages += 1
        for alert in page.get("value", []):
            version = alert["lastUpdateDateTime"]
            envelope = {
                "schema": "m365-ingest.intake.v1",
                "integration_id": "python-peer",
                "tenant_id": tenant,
                "source": "defender_alerts",
                "id": alert["id"],
                "version": version,
                "dedup_key": f"defender_alerts/{tenant}/{alert['id']}/{version}",
                "polled_at": polled_at,
                "object": alert,
            }
            sink.add(json.dumps(envelope, separators=(",", ":")))
            delivered += 1
            watermark = max(watermark, version)
        sink.flush()
        table.put_item(
            TableName=env["PEER_STATE_TABLE"],
            Item={"pk": {"S": "python-peer"}, "sk": {"S": "cursor#defender_alerts"}, "watermark": {"S": watermark}},
        )
        url = page.get("@odata.nextLink")
        params = None
        # A link is followed only to the configured origin.
        if url and urlsplit(url)[:2] != origin[:2]:
            raise RuntimeError(f"nextLink leaves {graph}: {url}")
    print(json.dumps({"delivered": delivered, "sent": sink.sent, "pages": pages}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
