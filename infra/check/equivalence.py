"""Checks that the CDK app synthesises the stack of the SAM template, resource by resource and
property by property. Run by scripts/infra-check, with the Python of the SAM CLI's virtualenv
(it brings samtranslator).

The SAM template is first transformed into plain CloudFormation by samtranslator (the transform
CloudFormation itself applies at deploy time), so both sides are CloudFormation. Both are then
normalised (see `normalise`): what legitimately differs between a hand-written template and a
CDK synthesis is rewritten to one form, and the few differences that remain are listed, each
with its reason, in ALLOWED below. Anything else that differs - a resource, a property, a value,
a condition, a deletion policy, a parameter, an output - on one side only fails the check.

What normalising does, and why it is safe:
- logical ids: CDK's come from the construct path plus a hash; the path (metadata
  `aws:cdk:path`) is read back into the SAM name, through RENAMES where they differ. SAM's
  layer version id carries a content hash, dropped.
- the CDK app is synthesised for one environment (account 123456789012, us-east-1, stack name
  "ember"), so pseudo parameters (AWS::AccountId, ...) are resolved to those values on both
  sides; Fn::Sub and Fn::Join are rewritten to one joined form, Fn::GetAtt "A.B" to ["A", "B"].
- IAM policy documents (roles, key, queue and topic policies) are compared as sets of
  statements with one principal, action and resource each (a statement with several of those
  grants or denies each of them); `Sid` and policy names are labels. CDK attaches a role's
  policy as separate AWS::IAM::Policy resources: they are folded into the role.
- SAM writes the HTTP API's routes as an OpenAPI body, CDK as Route and Integration resources:
  both are read into one `Routes` map (route key -> integration).
- the tags SAM puts on what it generates (lambda:createdBy, httpapi:createdBy) are dropped.
- an event rule target's Id (a label) and a schedule input's JSON spacing are not compared.
- function and layer code (S3 locations of assets), resource Metadata (checkov skips, SAM build
  settings, CDK paths and cdk-nag acknowledgements) and DependsOn (order of creation only:
  every reference already orders it) are not compared; DeletionPolicy "Delete" is the default.
- lists whose order has no meaning (everything but ORDERED) are compared sorted.

usage: python equivalence.py infra/template.yaml cdk.out/ember.template.json
"""

import copy
import json
import os
import re
import sys

import yaml


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags, read into their long forms (`!Ref X` ->
    {"Ref": "X"}, `!GetAtt A.B` -> {"Fn::GetAtt": ["A", "B"]}, `!Sub s` -> {"Fn::Sub": s})."""


def _tag(loader, suffix, node):
    key = suffix if suffix in ("Ref", "Condition") else "Fn::" + suffix
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
        return {key: value}
    if isinstance(node, yaml.SequenceNode):
        return {key: loader.construct_sequence(node, deep=True)}
    return {key: loader.construct_mapping(node, deep=True)}


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


# The environment scripts/infra-check synthesises the CDK app for.
PSEUDO = {
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "ember",
}

# CDK construct paths (below the stack, without "/Resource") whose SAM logical id is another.
RENAMES = {
    "HttpApi/DefaultStage": "HttpApiApiGatewayDefaultStage",
    "HttpApi/POST--v1--events/IngestIntegration-Permission": "IngestFunctionEventsPermission",
    "DefaultRoute/ApiIntegration-Permission": "ApiFunctionDefaultPermission",
    "ConfigurationSet/Feedback": "ConfigurationSetEvents",
    "FailedEventsQueue/Policy": "FailedEventsQueuePolicy",
    "WebhookDeadLetterQueue/Policy": "WebhookDeadLetterQueuePolicy",
    "AlarmTopic/Policy": "AlarmTopicPolicy",
}
# CDK paths whose rule permission is named after the target function (AllowEventRule<stack><fn><hash>).
RULE_PERMISSION = re.compile(r"^(\w+Rule)/AllowEventRule\w+$")

# Lists whose order means something; every other list is compared as a set.
ORDERED = {"Fn::If", "Fn::Join", "Fn::Sub", "Fn::Select", "Fn::Split", "Fn::GetAtt", "Fn::Equals", "Fn::Not",
           "Fn::And", "Fn::Or", "Fn::FindInMap", "Layers", "KeySchema"}

# Every difference that remains after normalising: (resource, path in it) -> why it is fine
# ("Template" stands for the template's own fields). A difference not listed here fails the
# check; an entry that no longer differs fails it too.
ALLOWED = {
    ("Template", "Description"): "Each says which of the two it is (the CDK app's names itself).",
    ("ModelLayer", "Properties.LayerName"):
        "SAM names the layer after its logical id; CDK lets CloudFormation name it. A label: the "
        "functions reference the version, not the name.",
    ("AlarmTopic", "Properties.KmsMasterKeyId"):
        "The AWS-managed SNS key by its alias (SAM) or its alias's ARN (CDK's kms.Alias): the same key.",
    ("ModelLayer", "UpdateReplacePolicy"):
        "Both keep every published version: SAM's layer gets a new logical id when its content "
        "changes (the old one goes, kept by DeletionPolicy), CDK's is replaced in place (kept by "
        "UpdateReplacePolicy).",
    ("IngestFunctionEventsPermission", "Properties.SourceArn"):
        "SAM scopes the permission to POST /v1/events, CDK's integration to any method on "
        "/v1/events; the only route on that path is POST (the rest go to api's $default).",
}


def resolve_sub(value):
    """Fn::Sub as a list of parts (strings, Ref and GetAtt)."""
    text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
    parts, pos = [], 0
    for m in re.finditer(r"\$\{([^}]*)\}", text):
        parts.append(text[pos:m.start()])
        name = m.group(1)
        if name.startswith("!"):
            parts.append("${" + name[1:] + "}")
        elif name in variables:
            parts.append(variables[name])
        elif "." in name and not name.startswith("AWS::"):
            parts.append({"Fn::GetAtt": name.split(".", 1)})
        else:
            parts.append({"Ref": name})
        pos = m.end()
    parts.append(text[pos:])
    return parts


def joined(parts):
    """One canonical form for a concatenation: adjacent strings merged, nested joins inlined;
    a single part is itself."""
    flat = []
    for p in parts:
        if isinstance(p, dict) and list(p) == ["Fn::Join"] and p["Fn::Join"][0] == "":
            flat.extend(p["Fn::Join"][1])
        else:
            flat.append(p)
    out = []
    for p in flat:
        if p == "":
            continue
        if isinstance(p, str) and out and isinstance(out[-1], str):
            out[-1] += p
        else:
            out.append(p)
    if not out:
        return ""
    if len(out) == 1:
        return out[0]
    return {"Fn::Join": ["", out]}


def canon(value, ids, key=None):
    """`value` with intrinsic functions in one spelling, logical ids renamed by `ids`, pseudo
    parameters resolved, and lists sorted unless their order means something (`key` is the
    name the list is under)."""
    if isinstance(value, dict):
        if len(value) == 1:
            (k, v), = value.items()
            if k == "Ref":
                return PSEUDO.get(v) or {"Ref": ids.get(v, v)}
            if k == "Fn::GetAtt":
                target, attr = v.split(".", 1) if isinstance(v, str) else v
                return {"Fn::GetAtt": [ids.get(target, target), canon(attr, ids)]}
            if k == "Fn::Sub":
                return canon({"Fn::Join": ["", resolve_sub(v)]}, ids)
            if k == "Fn::Join" and isinstance(v[1], list):
                sep, items = v
                parts = []
                for i, item in enumerate(items):
                    if i and sep:
                        parts.append(sep)
                    parts.append(canon(item, ids))
                return joined(parts)
        return {k: canon(v, ids, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [canon(v, ids) for v in value]
        if key in ORDERED:
            return items
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return value


NEGATED = re.compile(r"^(ForAnyValue:|ForAllValues:)?\w*Not\w*$")


def statements(doc):
    """A policy document as a sorted list of statements with one principal, one action, one
    resource each, without Sid (statements with lists grant or deny each element). A condition
    with one non-negated operator on one key is split by value too (its values are alternatives)."""
    out = set()
    for st in doc.get("Statement", []):
        st = dict(st)
        st.pop("Sid", None)
        principals = [None]
        if "Principal" in st:
            p = st.pop("Principal")
            p = {"AWS": "*"} if p == "*" else p
            principals = [(kind, v) for kind, vs in sorted(p.items()) for v in (vs if isinstance(vs, list) else [vs])]
        lists = {}
        for field in ("Action", "NotAction", "Resource", "NotResource"):
            if field in st:
                v = st.pop(field)
                lists[field] = v if isinstance(v, list) else [v]
        conditions = [st.pop("Condition", None)]
        c = conditions[0]
        if c and len(c) == 1:
            (op, keys), = c.items()
            if len(keys) == 1 and not NEGATED.match(op):
                (ck, cv), = keys.items()
                if isinstance(cv, list):
                    conditions = [{op: {ck: x}} for x in cv]
        combos = [{}]
        for field, values in lists.items():
            combos = [dict(c, **{field: v}) for c in combos for v in values]
        for principal in principals:
            for cond in conditions:
                for combo in combos:
                    s = dict(st, **combo)
                    if principal is not None:
                        s["Principal"] = {principal[0]: principal[1]}
                    if cond is not None:
                        s["Condition"] = cond
                    out.add(json.dumps(s, sort_keys=True))
    return {"Version": doc.get("Version"), "Statement": [json.loads(s) for s in sorted(out)]}


def load_sam(path):
    """The SAM template, transformed into CloudFormation."""
    from samtranslator.translator.transform import transform

    template = yaml.load(open(path), Loader=CfnLoader)
    for r in template["Resources"].values():
        p = r.get("Properties", {})
        # Local paths, uploaded by `sam build`/`sam deploy`: any S3 location will do here.
        if r["Type"] == "AWS::Serverless::Function":
            p["CodeUri"] = "s3://placeholder/function.zip"
        if r["Type"] == "AWS::Serverless::LayerVersion":
            p["ContentUri"] = "s3://placeholder/layer.zip"

    class NoManagedPolicies:
        def load(self):
            return {}

    os.environ.setdefault("AWS_DEFAULT_REGION", PSEUDO["AWS::Region"])
    return transform(template, {"AWS::Region": PSEUDO["AWS::Region"]}, NoManagedPolicies())


def sam_ids(resources):
    """SAM logical id -> canonical name (the layer version's content hash dropped)."""
    ids = {}
    for k, v in resources.items():
        m = re.fullmatch(r"(\w+?)[0-9a-f]{10}", k)
        ids[k] = m.group(1) if v["Type"] == "AWS::Lambda::LayerVersion" and m else k
    return ids


def cdk_ids(resources):
    """CDK logical id -> canonical name (from the construct path)."""
    ids = {}
    for k, v in resources.items():
        path = v.get("Metadata", {}).get("aws:cdk:path")
        if not path:
            ids[k] = k
            continue
        path = path.split("/", 1)[1]
        path = re.sub(r"/(Resource|Default)$", "", path)
        m = RULE_PERMISSION.match(path)
        ids[k] = RENAMES.get(path) or (m.group(1) + "Permission" if m else path.replace("/", "").replace("-", ""))
    return ids


def routes_from_openapi(body, ids):
    """SAM's OpenAPI body as route key -> integration. Whatever else an operation or its
    integration says (an authorizer, a timeout) stays in the route, so it is compared too."""
    out = {}
    for path, methods in body.get("paths", {}).items():
        for method, op in methods.items():
            op = dict(op)
            integration = dict(op.pop("x-amazon-apigateway-integration"))
            default = op.pop("isDefaultRoute", False)
            if op.get("responses") == {}:
                del op["responses"]
            key = "$default" if default else f"{method.replace('x-amazon-apigateway-any-method', 'ANY').upper()} {path}"
            uri = canon(integration.pop("uri"), ids)
            target = [p for p in uri["Fn::Join"][1] if isinstance(p, dict)]
            # An AWS_PROXY integration is always called with POST.
            if integration.get("httpMethod") == "POST":
                del integration["httpMethod"]
            out[key] = {"IntegrationType": integration.pop("type").upper(), "Function": target[0]["Fn::GetAtt"][0],
                        "PayloadFormatVersion": integration.pop("payloadFormatVersion"), "AuthorizationType": "NONE",
                        **canon(op, ids), **canon(integration, ids)}
    return out


def drop_sam_tags(props):
    """Without the tags SAM puts on what it generates (lambda:createdBy, httpapi:createdBy)."""
    tags = props.get("Tags")
    if isinstance(tags, list):
        tags = [t for t in tags if not (isinstance(t, dict) and t.get("Key", "").endswith(":createdBy") and t.get("Value") == "SAM")]
    elif isinstance(tags, dict):
        tags = {k: v for k, v in tags.items() if not (k.endswith(":createdBy") and v == "SAM")}
    if tags:
        props["Tags"] = tags
    else:
        props.pop("Tags", None)


def normalise(template, ids, sam):
    """Resources by canonical name, each {Type, Properties, Condition, DeletionPolicy,
    UpdateReplacePolicy}, with parameters, conditions and outputs."""
    t = copy.deepcopy(template)
    rs = t["Resources"]
    out = {}
    # CDK: routes and integrations into the API, role policies into the roles.
    routes = {}
    for k, v in list(rs.items()):
        p = v.get("Properties", {})
        if v["Type"] == "AWS::ApiGatewayV2::Route":
            integration_id = p["Target"]["Fn::Join"][1][1]["Ref"]
            integration = rs[integration_id]["Properties"]
            routes.setdefault(p["ApiId"]["Ref"], {})[p["RouteKey"]] = {
                "IntegrationType": integration["IntegrationType"],
                "Function": ids[integration["IntegrationUri"]["Fn::GetAtt"][0]],
                "PayloadFormatVersion": integration["PayloadFormatVersion"],
                "AuthorizationType": p.get("AuthorizationType", "NONE"),
                **{f: p[f] for f in p if f not in ("ApiId", "RouteKey", "Target", "AuthorizationType")},
                **{f: integration[f] for f in integration if f not in ("ApiId", "IntegrationType", "IntegrationUri", "PayloadFormatVersion")},
            }
            del rs[k], rs[integration_id]
    for k, v in list(rs.items()):
        if v["Type"] == "AWS::IAM::Policy":
            p = v["Properties"]
            for role in p.pop("Roles"):
                rs[role["Ref"]]["Properties"].setdefault("Policies", []).append(
                    {"PolicyName": p["PolicyName"], "PolicyDocument": p["PolicyDocument"]})
            if set(p) - {"PolicyName", "PolicyDocument"}:
                raise SystemExit(f"{k}: policy properties not folded into its role: {sorted(set(p) - {'PolicyName', 'PolicyDocument'})}")
            del rs[k]
        elif v["Type"] == "AWS::CDK::Metadata":
            del rs[k]
    for k, v in rs.items():
        name = ids[k]
        p = canon(v.get("Properties", {}), ids)
        kind = v["Type"]
        if sam:
            drop_sam_tags(p)
        if kind == "AWS::Lambda::Function":
            p["Code"] = "<asset>"
        elif kind == "AWS::Events::Rule":
            # A target's Id only names it within the rule.
            for target in p.get("Targets", []):
                target.pop("Id", None)
        elif kind == "AWS::Scheduler::Schedule" and isinstance(p.get("Target", {}).get("Input"), str):
            # The function parses the input as JSON: its spacing means nothing.
            p["Target"]["Input"] = json.loads(p["Target"]["Input"])
        elif kind == "AWS::Lambda::LayerVersion":
            p["Content"] = "<asset>"
        elif kind == "AWS::Lambda::Permission":
            # A function's name or its ARN: the same function.
            fn = p.get("FunctionName")
            if isinstance(fn, dict) and fn.get("Fn::GetAtt", [None, None])[1] == "Arn":
                p["FunctionName"] = {"Ref": fn["Fn::GetAtt"][0]}
        elif kind == "AWS::IAM::Role":
            docs = [pol["PolicyDocument"] for pol in p.pop("Policies", [])]
            p["Policies"] = statements({"Version": "2012-10-17", "Statement": [s for d in docs for s in d["Statement"]]})
            versions = {d.get("Version") for d in docs}
            if versions - {"2012-10-17"}:
                p["PolicyVersions"] = sorted(map(str, versions))
        elif kind == "AWS::ApiGatewayV2::Api":
            if "Body" in p:
                body = dict(p.pop("Body"))
                p["Name"] = body.pop("info")["title"]
                p["ProtocolType"] = "HTTP"
                p["Routes"] = routes_from_openapi(body, ids)
                # Anything else in the body (components, CORS, ...) is compared as it is.
                del body["paths"], body["openapi"]
                body["tags"] = [t for t in body.get("tags", []) if t.get("name") != "httpapi:createdBy"]
                p.update({f"OpenApi.{k}": canon(v, ids) for k, v in body.items() if v})
            else:
                p["Routes"] = routes.get(k, {})
        for field in ("PolicyDocument", "KeyPolicy", "AssumeRolePolicyDocument"):
            if field in p:
                p[field] = statements(p[field])
        entry = {"Type": kind, "Properties": p}
        for attr in ("Condition", "DeletionPolicy", "UpdateReplacePolicy"):
            if v.get(attr, "Delete") != "Delete":
                entry[attr] = v[attr]
        if name in out:
            raise SystemExit(f"two resources named {name}")
        out[name] = entry
    params = {k: v for k, v in t.get("Parameters", {}).items() if k != "BootstrapVersion"}
    for v in params.values():
        # Numbers, or the same numbers as strings (CDK writes some either way).
        for f in ("Default", "MinValue", "MaxValue"):
            if f in v:
                v[f] = str(v[f])
        if "AllowedValues" in v:
            v["AllowedValues"] = sorted(map(str, v["AllowedValues"]))
    outputs = {k: canon(v, ids) for k, v in t.get("Outputs", {}).items()}
    conditions = canon({k: v for k, v in t.get("Conditions", {}).items() if k != "CDKMetadataAvailable"}, ids)
    return {"Resources": out, "Parameters": params, "Conditions": conditions, "Outputs": outputs,
            "Template": {"Description": t.get("Description"), "Metadata": canon(t.get("Metadata", {}), ids)}}


def diff(a, b, path, out):
    """Paths where `a` and `b` differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            diff(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}.{k}" if path else k, out)
    elif isinstance(a, list) and isinstance(b, list) and a != b:
        # Only the elements on one side (the whole lists when they differ by order alone).
        only_a, only_b = [x for x in a if x not in b], [x for x in b if x not in a]
        if only_a or only_b:
            out.append((f"{path} (elements on one side only)", only_a, only_b))
        else:
            out.append((path, a, b))
    elif a != b:
        out.append((path, a, b))


def main(sam_path, cdk_path):
    sam_t = load_sam(sam_path)
    cdk_t = json.load(open(cdk_path))
    sam = normalise(sam_t, sam_ids(sam_t["Resources"]), True)
    cdk = normalise(cdk_t, cdk_ids(cdk_t["Resources"]), False)
    found = []
    for section in ("Template", "Parameters", "Conditions", "Outputs"):
        diff(sam[section], cdk[section], section, found)
    for name in sorted(set(sam["Resources"]) | set(cdk["Resources"])):
        a, b = sam["Resources"].get(name), cdk["Resources"].get(name)
        if a is None or b is None:
            found.append((f"Resources.{name}", a and a["Type"] or "<absent>", b and b["Type"] or "<absent>"))
            continue
        diff(a, b, f"Resources.{name}", found)
    problems, allowed = [], set()
    for path, a, b in found:
        where = path.split(" (")[0]
        key = next(((r, p) for (r, p) in ALLOWED if where in (f"Resources.{r}.{p}", f"{r}.{p}")
                    or where.startswith((f"Resources.{r}.{p}.", f"{r}.{p}."))), None)
        if key:
            allowed.add(key)
            continue
        problems.append(f"{path} differs:\n  SAM: {json.dumps(a, sort_keys=True)}\n  CDK: {json.dumps(b, sort_keys=True)}")
    for key in sorted(set(ALLOWED) - allowed):
        problems.append(f"allowed difference {key[0]} {key[1]} no longer differs: remove it from ALLOWED")
    if problems:
        print("\n".join(problems))
        print(f"{len(problems)} difference(s) between the SAM and CDK templates")
        return 1
    print(f"equivalent: {len(sam['Resources'])} resources, every property ({len(allowed)} allowed differences, "
          f"each with its reason), {len(sam['Parameters'])} parameters, {len(sam['Conditions'])} conditions, "
          f"{len(sam['Outputs'])} outputs")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
