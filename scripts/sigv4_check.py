#!/usr/bin/env python3
"""Re-signs a presigned STS GetCallerIdentity URL with botocore and compares.

usage: sigv4_check.py URL CLUSTER_ID
       (secret in AWS_SECRET_ACCESS_KEY, optional session token in AWS_SESSION_TOKEN)

botocore (the AWS CLI's SigV4 implementation) presigns the same request from scratch:
the same host, access key, region, service, time and X-Amz-Expires as the URL says, and
the header `x-k8s-aws-id: CLUSTER_ID`. The signatures and the decoded query parameters
must be equal. Prints a JSON report; exit status 0 when they agree, 1 when not, 2 on
bad input.
"""

import datetime
import json
import os
import sys
from urllib.parse import parse_qs, urlsplit

try:  # the AWS CLI v1 ships botocore inside its own package
    from awscli.botocore import auth, awsrequest, credentials
except ImportError:  # a standalone botocore
    from botocore import auth, awsrequest, credentials


def single_valued(query):
    params = parse_qs(query, keep_blank_values=True, strict_parsing=True)
    for key, values in params.items():
        if len(values) != 1:
            raise ValueError(f"parameter {key} appears {len(values)} times")
    return {k: v[0] for k, v in params.items()}


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    url, cluster_id = argv[1], argv[2]
    parts = urlsplit(url)
    ours = single_valued(parts.query)
    akid, _date, region, service, _term = ours["X-Amz-Credential"].split("/")
    signed_at = datetime.datetime.strptime(ours["X-Amz-Date"], "%Y%m%dT%H%M%SZ")

    creds = credentials.Credentials(
        akid, os.environ["AWS_SECRET_ACCESS_KEY"], os.environ.get("AWS_SESSION_TOKEN") or None
    )
    request = awsrequest.AWSRequest(
        method="GET",
        url=f"{parts.scheme}://{parts.netloc}{parts.path}",
        params={"Action": ours["Action"], "Version": ours["Version"]},
        headers={"x-k8s-aws-id": cluster_id},
    )
    signer = auth.SigV4QueryAuth(creds, service, region, expires=int(ours["X-Amz-Expires"]))
    # Sign at the URL's own time, not now.
    auth.get_current_datetime = lambda *args, **kwargs: signed_at
    signer.add_auth(request)
    botocore_url = request.prepare().url
    theirs = single_valued(urlsplit(botocore_url).query)

    report = {
        "match": ours == theirs,
        "signature_ours": ours.get("X-Amz-Signature"),
        "signature_botocore": theirs.get("X-Amz-Signature"),
        "differing_parameters": sorted(
            k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k)
        ),
        "botocore_url": botocore_url,
    }
    print(json.dumps(report, indent=2))
    return 0 if report["match"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
