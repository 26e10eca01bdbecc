"""Checks that the CDK app synthesises the stack of the SAM template: the same parameters
(names, types, defaults, allowed values), table (keys, indexes, TTL, recovery, encryption),
schedules (expressions and inputs), rules (event patterns), queues (and their encryption,
retention and receive restriction) and alarms, no gateway CORS and a throttle of its own for
ingest, and, per function, the same IAM actions, secrets read, reserved concurrency, timeout and
environment variable names. Run by scripts/infra-check.

usage: python equivalence.py infra/template.yaml cdk.out/ember.template.json
"""

import json
import sys

import yaml


class CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


CfnLoader.add_multi_constructor("!", _tag)

FUNCTIONS = ["Ingest", "Api", "Decay", "Drip", "Feedback", "Handoff"]


def by_type(resources, kind):
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def named(resources, kind, prefix):
    """The resource of `kind` whose logical id starts with `prefix` (CDK adds a hash)."""
    found = [v for k, v in by_type(resources, kind).items() if k.startswith(prefix)]
    if len(found) != 1:
        raise SystemExit(f"expected one {kind} named {prefix}*, found {len(found)}")
    return found[0]


def actions(policy_docs):
    out = set()
    for doc in policy_docs:
        for st in doc["Statement"]:
            a = st["Action"]
            out |= set(a if isinstance(a, list) else [a])
    return out


def main(sam_path, cdk_path):
    sam = yaml.load(open(sam_path), Loader=CfnLoader)
    cdk = json.load(open(cdk_path))
    problems = []

    def same(what, a, b):
        if a != b:
            problems.append(f"{what} differ:\n  SAM: {a}\n  CDK: {b}")

    def params(t):
        return {k: (v["Type"], str(v.get("Default")), sorted(map(str, v.get("AllowedValues", []))))
                for k, v in t["Parameters"].items() if not k.startswith("BootstrapVersion")}

    same("parameters", params(sam), params(cdk))

    sr, cr = sam["Resources"], cdk["Resources"]
    st, ct = named(sr, "AWS::DynamoDB::Table", "Table")["Properties"], named(cr, "AWS::DynamoDB::Table", "Table")["Properties"]
    for key in ("KeySchema", "BillingMode", "TimeToLiveSpecification", "PointInTimeRecoverySpecification", "DeletionProtectionEnabled"):
        same(f"table {key}", st.get(key), ct.get(key))
    same("table attributes", sorted(map(json.dumps, st["AttributeDefinitions"])), sorted(map(json.dumps, ct["AttributeDefinitions"])))
    same("table indexes", sorted(map(json.dumps, st["GlobalSecondaryIndexes"])), sorted(map(json.dumps, ct["GlobalSecondaryIndexes"])))
    same("table encryption", bool(st["SSESpecification"]["SSEEnabled"]), bool(ct["SSESpecification"]["SSEEnabled"]))

    def schedules(rs):
        out = {}
        for v in by_type(rs, "AWS::Scheduler::Schedule").values():
            p = v["Properties"]
            t = p["Target"]
            out[p["ScheduleExpression"]] = (json.loads(t["Input"]), t["RetryPolicy"], p["FlexibleTimeWindow"], p["ScheduleExpressionTimezone"])
        return out

    same("schedules", schedules(sr), schedules(cr))

    def patterns(rs):
        out = []
        for v in by_type(rs, "AWS::Events::Rule").values():
            pat = json.loads(json.dumps(v["Properties"]["EventPattern"]))
            # The configuration set's name is a reference in both: compare the shape only.
            tags = pat.get("detail", {}).get("mail", {}).get("tags")
            if tags:
                tags["ses:configuration-set"] = ["<configuration set>"]
            out.append(json.dumps(pat, sort_keys=True))
        return sorted(out)

    same("event rule patterns", patterns(sr), patterns(cr))
    for kind in ("AWS::SQS::Queue", "AWS::CloudWatch::Alarm", "AWS::Logs::LogGroup", "AWS::Events::EventBus",
                 "AWS::SES::ConfigurationSet", "AWS::SES::ConfigurationSetEventDestination", "AWS::SNS::Topic"):
        same(f"number of {kind}", len(by_type(sr, kind)), len(by_type(cr, kind)))

    def queues(rs):
        out = []
        for v in by_type(rs, "AWS::SQS::Queue").values():
            p = v["Properties"]
            out.append((bool(p.get("KmsMasterKeyId")), json.dumps(p.get("MessageRetentionPeriod"))))
        return sorted(out)

    same("dead-letter queues (KMS key, retention)", queues(sr), queues(cr))

    def receive_denied(rs):
        out = 0
        for v in by_type(rs, "AWS::SQS::QueuePolicy").values():
            for st in v["Properties"]["PolicyDocument"]["Statement"]:
                if st["Effect"] == "Deny" and st["Action"] in ("sqs:ReceiveMessage", ["sqs:ReceiveMessage"]) and "ArnNotEquals" in st.get("Condition", {}):
                    out += 1
        return out

    same("queues whose receive is restricted", receive_denied(sr), receive_denied(cr))
    if receive_denied(sr) != len(by_type(sr, "AWS::SQS::Queue")):
        problems.append("every dead-letter queue must deny sqs:ReceiveMessage to all but the replay roles")
    sam_api = named(sr, "AWS::Serverless::HttpApi", "HttpApi")["Properties"]
    cdk_api = named(cr, "AWS::ApiGatewayV2::Api", "HttpApi")["Properties"]
    same("gateway CORS (the application answers CORS)", "CorsConfiguration" in sam_api, "CorsConfiguration" in cdk_api)
    cdk_stage = named(cr, "AWS::ApiGatewayV2::Stage", "HttpApiDefaultStage")["Properties"]
    same("routes with their own throttle", sorted(sam_api.get("RouteSettings", {})), sorted(cdk_stage.get("RouteSettings", {})))

    for fn in FUNCTIONS:
        sf = named(sr, "AWS::Serverless::Function", fn + "Function")["Properties"]
        cf = named(cr, "AWS::Lambda::Function", fn + "Function")["Properties"]
        same(f"{fn} timeout", sf["Timeout"], cf["Timeout"])
        env_s = set(sam["Globals"]["Function"]["Environment"]["Variables"]) | set(sf.get("Environment", {}).get("Variables", {}))
        same(f"{fn} environment", sorted(env_s), sorted(cf["Environment"]["Variables"]))
        sa = actions([p["PolicyDocument"] for p in named(sr, "AWS::IAM::Role", fn + "Role")["Properties"]["Policies"]])
        ca = actions([named(cr, "AWS::IAM::Policy", fn + "Policy")["Properties"]["PolicyDocument"]])
        same(f"{fn} IAM actions", sorted(sa), sorted(ca))
        same(f"{fn} dead-letter queue", "DeadLetterQueue" in sf, "DeadLetterConfig" in cf)
        same(f"{fn} reserved concurrency", "ReservedConcurrentExecutions" in sf, "ReservedConcurrentExecutions" in cf)

        def secrets_read(docs):
            out = set()
            for doc in docs:
                for st in doc["Statement"]:
                    if st["Action"] == "secretsmanager:GetSecretValue":
                        res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                        out |= {json.dumps(r, sort_keys=True).split("Create")[1].split("Secret")[0] for r in res}
            return sorted(out)

        same(f"{fn} secrets read", secrets_read([p["PolicyDocument"] for p in named(sr, "AWS::IAM::Role", fn + "Role")["Properties"]["Policies"]]),
             secrets_read([named(cr, "AWS::IAM::Policy", fn + "Policy")["Properties"]["PolicyDocument"]]))

    if problems:
        print("\n".join(problems))
        return 1
    print(f"equivalent: parameters, table, schedules, rules, queues, alarms, and the IAM actions, timeouts and environment of {len(FUNCTIONS)} functions")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
