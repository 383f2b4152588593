"""Obtain an app-only token from the tenant simulator with Microsoft's MSAL for Python.

Reads one JSON object on stdin:
  {"authority": "https://127.0.0.1:PORT/<tenant>", "instance_discovery": "https://.../common/discovery/instance",
   "ca_file": "...", "client_id": "...", "scope": "https://graph.microsoft.com/.default",
   "secret": "..."                                  # client secret, or
   "private_key_file": "...", "thumbprint": "..."   # RS256 + x5t (SHA-1), or
   "private_key_file": "...", "certificate_file": "..."  # PS256 + x5t#S256
   "validate_authority": true}
Prints one JSON object: MSAL's result (access_token, expires_in, token_type, ...) or its error.
"""

import json
import sys
from urllib.parse import urlsplit

import msal
import requests


class LoopbackOnly(requests.Session):
    """Tests reach only this machine: any other host is a test failure, not a network call."""

    def request(self, method, url, *args, **kwargs):
        host = urlsplit(url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise RuntimeError(f"MSAL tried to reach {host}: tests stay on loopback")
        return super().request(method, url, *args, **kwargs)


def main() -> int:
    args = json.load(sys.stdin)
    session = LoopbackOnly()
    # REQUESTS_CA_BUNDLE in the environment would override `verify`; ignore the environment.
    session.trust_env = False
    session.verify = args["ca_file"]
    if "secret" in args:
        credential = args["secret"]
    else:
        with open(args["private_key_file"]) as f:
            credential = {"private_key": f.read()}
        if "thumbprint" in args:
            credential["thumbprint"] = args["thumbprint"]
        else:
            with open(args["certificate_file"]) as f:
                credential["public_certificate"] = f.read()
    app = msal.ConfidentialClientApplication(
        args["client_id"],
        client_credential=credential,
        authority=args["authority"],
        instance_discovery=args["instance_discovery"],
        # MSAL looks up authority aliases at login.microsoftonline.com after a failed token
        # request, whatever instance_discovery says; a test of failures turns validation off.
        validate_authority=args.get("validate_authority", True),
        http_client=session,
    )
    result = app.acquire_token_for_client(scopes=[args["scope"]])
    # A second call must come from MSAL's cache, not the network.
    again = app.acquire_token_for_client(scopes=[args["scope"]])
    result["_cached_second_call"] = again.get("token_source") == "cache"
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
