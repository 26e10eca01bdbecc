"""Checks one stack template (SAM YAML or the CDK's synthesised JSON) against Ember's deployment
rules, each a defect once found in review:

- no gateway CORS (the application answers CORS, for ingest only: API Gateway's own CORS would
  answer admin routes for the website origins);
- ingest has a throttle of its own (`POST /v1/events`), apart from every other route;
- every function has a reserved concurrency (so an ingest flood cannot starve drip and feedback);
- `SesIdentity` has no default and refuses "*";
- secrets are split by consumer: only ingest and api read the API keys, only api the CRM secret,
  only handoff (and the replay role) the webhooks' secrets;
- every dead-letter queue is KMS-encrypted with a customer-managed key, keeps messages for the
  `DeadLetterRetentionSeconds` parameter, and denies `sqs:ReceiveMessage` to all but named roles.

usage: python policy.py TEMPLATE   (run by scripts/infra-check on both templates)
"""

import json
import re
import sys

from equivalence import CfnLoader, by_type, named, FUNCTIONS

import yaml

# Which secret (by its Create<Name>Secret condition) each function may read.
SECRETS = {
    "Ingest": {"Keys", "Unsubscribe"},
    "Api": {"Keys", "Crm", "Unsubscribe"},
    "Decay": {"Unsubscribe"},
    "Drip": {"Unsubscribe"},
    "Feedback": {"Unsubscribe"},
    "Handoff": {"Webhooks", "Unsubscribe"},
}


def secrets_read(docs):
    out = set()
    for doc in docs:
        for st in doc["Statement"]:
            if st["Action"] == "secretsmanager:GetSecretValue":
                res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                for r in res:
                    m = re.search(r'"Create(\w+?)Secret"', json.dumps(r))
                    out.add(m.group(1) if m else json.dumps(r))
    return out


def main(path):
    text = open(path).read()
    t = json.loads(text) if path.endswith(".json") else yaml.load(text, Loader=CfnLoader)
    rs, problems = t["Resources"], []
    sam = "Transform" in t

    if sam:
        api = named(rs, "AWS::Serverless::HttpApi", "HttpApi")["Properties"]
        routes = api.get("RouteSettings", {})
    else:
        api = named(rs, "AWS::ApiGatewayV2::Api", "HttpApi")["Properties"]
        routes = named(rs, "AWS::ApiGatewayV2::Stage", "HttpApiDefaultStage")["Properties"].get("RouteSettings", {})
    if "CorsConfiguration" in api:
        problems.append("the HTTP API answers CORS itself: remove it, the application answers CORS (ingest only)")
    if "POST /v1/events" not in routes:
        problems.append("POST /v1/events has no throttle of its own (RouteSettings)")

    ses = t["Parameters"].get("SesIdentity", {})
    if "Default" in ses or re.fullmatch(ses.get("AllowedPattern", ".*"), "*"):
        problems.append(f"SesIdentity must be required and refuse \"*\" (Default {ses.get('Default')!r}, pattern {ses.get('AllowedPattern')!r})")

    for fn in FUNCTIONS:
        kind = "AWS::Serverless::Function" if sam else "AWS::Lambda::Function"
        props = named(rs, kind, fn + "Function")["Properties"]
        if "ReservedConcurrentExecutions" not in props:
            problems.append(f"{fn}: no reserved concurrency")
        if sam:
            docs = [p["PolicyDocument"] for p in named(rs, "AWS::IAM::Role", fn + "Role")["Properties"]["Policies"]]
        else:
            docs = [named(rs, "AWS::IAM::Policy", fn + "Policy")["Properties"]["PolicyDocument"]]
        got = secrets_read(docs)
        if got != SECRETS[fn]:
            problems.append(f"{fn} reads the secrets {sorted(got)}, should read {sorted(SECRETS[fn])}")

    queues = by_type(rs, "AWS::SQS::Queue")
    denied = 0
    for v in by_type(rs, "AWS::SQS::QueuePolicy").values():
        for st in v["Properties"]["PolicyDocument"]["Statement"]:
            if st["Effect"] == "Deny" and st["Action"] in ("sqs:ReceiveMessage", ["sqs:ReceiveMessage"]) \
                    and "ArnNotEquals" in st.get("Condition", {}):
                denied += 1
    if denied != len(queues):
        problems.append(f"{len(queues) - denied} dead-letter queue(s) let any authorised principal receive (no Deny of sqs:ReceiveMessage)")
    for name, v in queues.items():
        p = v["Properties"]
        if not p.get("KmsMasterKeyId") or "alias/aws/sqs" in json.dumps(p.get("KmsMasterKeyId")):
            problems.append(f"{name}: not encrypted with a customer-managed KMS key")
        if "DeadLetterRetentionSeconds" not in json.dumps(p.get("MessageRetentionPeriod")):
            problems.append(f"{name}: retention is not the DeadLetterRetentionSeconds parameter ({p.get('MessageRetentionPeriod')})")

    if problems:
        print(f"{path}:\n  " + "\n  ".join(problems))
        return 1
    print(f"{path}: no gateway CORS, ingest throttled apart, {len(FUNCTIONS)} functions with reserved concurrency and only their own secrets, "
          f"SesIdentity required, {len(queues)} dead-letter queues encrypted, bounded and receive-restricted")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
