"""Cold starts of Ember's release bootstraps against a local Lambda Runtime API.

Implements just enough of the Lambda Runtime API (`GET /2018-06-01/runtime/invocation/next`,
`POST .../invocation/{id}/response|error`, `POST .../init/error`) to time, for each bootstrap,
the interval from just before the process is spawned to its first `next` request: everything a
container does before it can take an invocation (loading its configuration, reading the secret,
loading the model, building its clients). The hello-world floor runs in the same rounds,
interleaved with Ember's functions, so machine load hits every binary alike; each figure is the
median of --runs starts.

Then it invokes `ember-ingest` a few times with events/http-post-events.json (fresh event ids
each time) and reports the handler's duration: from handing out the event to receiving the
response, DynamoDB (moto) round trips included.

Run by scripts/coldstart, with the Python of scripts/moto's venv (boto3 is there).
"""

import argparse
import hashlib
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FUNCTIONS = ["ingest", "api", "decay", "drip", "feedback", "handoff"]
PREFIX = "/2018-06-01/runtime"


class Session:
    """One process's conversation with the runtime API."""

    def __init__(self, events=()):
        self.first_next = None  # perf_counter_ns of the first `next`
        self.got_next = threading.Event()
        self.pending = queue.Queue()
        for e in events:
            self.pending.put(e)
        self.handed = {}  # request id -> perf_counter_ns when handed out
        self.done = queue.Queue()  # (request id, status, ns, body)
        self.init_error = None
        self.closed = threading.Event()


class RuntimeApi(ThreadingHTTPServer):
    daemon_threads = True
    session = None

    def handle_error(self, request, client_address):
        # A bootstrap stopped while its `next` long-poll is open drops the connection: expected.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        now = time.perf_counter_ns()
        s = self.server.session
        if self.path != PREFIX + "/invocation/next" or s is None:
            return self._send(404, b"{}")
        if s.first_next is None:
            s.first_next = now
            s.got_next.set()
        # Hand out the next event, or hold the request until the run is over.
        while True:
            try:
                event = s.pending.get(timeout=0.05)
                break
            except queue.Empty:
                if s.closed.is_set():
                    return
        rid = str(uuid.uuid4())
        body = json.dumps(event).encode()
        s.handed[rid] = time.perf_counter_ns()
        deadline = int(time.time() * 1000) + 30_000
        try:
            self._send(200, body, {
                "Lambda-Runtime-Aws-Request-Id": rid,
                "Lambda-Runtime-Deadline-Ms": str(deadline),
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:bench",
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
            })
        except OSError:
            pass

    def do_POST(self):
        now = time.perf_counter_ns()
        s = self.server.session
        body = self._body()
        if s is not None and self.path == PREFIX + "/init/error":
            s.init_error = body.decode(errors="replace")
        elif s is not None and self.path.startswith(PREFIX + "/invocation/"):
            rid, _, kind = self.path[len(PREFIX + "/invocation/"):].partition("/")
            s.done.put((rid, kind, now, body))
        self._send(202, b"{}")


def start_api():
    api = RuntimeApi(("127.0.0.1", 0), Handler)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    return api


def spawn(path, env, log):
    return subprocess.Popen([path], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def stop(proc, session):
    session.closed.set()
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def cold_start(api, path, env, log, timeout=20.0):
    """Milliseconds from spawn to the first `next`, or raises with what went wrong."""
    s = Session()
    api.session = s
    t0 = time.perf_counter_ns()
    proc = spawn(path, env, log)
    try:
        while not s.got_next.wait(0.01):
            if proc.poll() is not None:
                raise RuntimeError(f"{os.path.basename(path)} exited ({proc.returncode}) before asking for an invocation; see {log.name}")
            if (time.perf_counter_ns() - t0) / 1e9 > timeout:
                raise RuntimeError(f"{os.path.basename(path)} did not ask for an invocation within {timeout} s")
        if s.init_error:
            raise RuntimeError(f"init error: {s.init_error}")
        return (s.first_next - t0) / 1e6
    finally:
        stop(proc, s)
        api.session = None


def invoke_durations(api, path, env, log, events):
    """Handler durations (ms) of `events`, given one after another to one process."""
    s = Session(events)
    api.session = s
    proc = spawn(path, env, log)
    out = []
    try:
        for _ in events:
            rid, kind, ns, body = s.done.get(timeout=60)
            if kind != "response":
                raise RuntimeError(f"invocation failed: {body[:500]!r}")
            answer = json.loads(body)
            if answer.get("statusCode") != 202:
                raise RuntimeError(f"unexpected answer: {answer}")
            out.append((ns - s.handed[rid]) / 1e6)
        return out
    finally:
        stop(proc, s)
        api.session = None


def set_up_moto(endpoint, table, with_secret):
    """Table (the definition of shared/adapters/store-dynamodb/src/table.rs), bus, queue, SES identity, secret."""
    import boto3

    kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    ddb = boto3.client("dynamodb", **kw)
    attrs = [{"AttributeName": a, "AttributeType": "S"} for a in ("PK", "SK")]
    gsis = []
    for kind in ("decay", "drip", "sla"):
        attrs += [{"AttributeName": f"{kind}_shard", "AttributeType": "S"}, {"AttributeName": f"{kind}_at", "AttributeType": "S"}]
        gsis.append({
            "IndexName": f"{kind}_due",
            "KeySchema": [{"AttributeName": f"{kind}_shard", "KeyType": "HASH"}, {"AttributeName": f"{kind}_at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        })
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=attrs,
                     KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
                     GlobalSecondaryIndexes=gsis)
    boto3.client("events", **kw).create_event_bus(Name=table)
    queue_url = boto3.client("sqs", **kw).create_queue(QueueName=table)["QueueUrl"]
    boto3.client("sesv2", **kw).create_email_identity(EmailIdentity="ember.example")
    secret_arn = None
    if with_secret:
        secret_arn = boto3.client("secretsmanager", **kw).create_secret(
            Name=table, SecretString=json.dumps({"EMBER_UNSUBSCRIBE_SECRET": "bench-" + uuid.uuid4().hex}))["ARN"]
    return queue_url, secret_arn


def ingest_events(template_path, n):
    """`n` API Gateway events from the sample, each with fresh event ids and a fresh email."""
    with open(template_path) as f:
        sample = json.load(f)
    out = []
    for i in range(n):
        body = json.loads(sample["body"])
        tag = uuid.uuid4().hex[:12]
        for ev in body["batch"]:
            ev["event_id"] = f"{ev['event_id']}-{tag}"
            ev["email"] = f"bench-{tag}@example.com"
            ev.pop("occurred_at", None)  # now: the model's windows and decay see fresh events
            if "anonymous_id" in ev:
                ev["anonymous_id"] = f"anon-{tag}"
        e = dict(sample)
        e["body"] = json.dumps(body)
        out.append(e)
    return out


def stats(xs):
    xs = sorted(xs)
    return {"median": statistics.median(xs), "min": xs[0], "max": xs[-1], "runs": len(xs)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="directory with the release binaries (scripts/release)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--endpoint", help="moto endpoint; without it, AWS calls go to a closed port and the secret is not read")
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--invocations", type=int, default=21)
    ap.add_argument("--event", default="events/http-post-events.json")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    table = "ember-coldstart-" + uuid.uuid4().hex[:8]
    endpoint = args.endpoint or "http://127.0.0.1:9"
    queue_url, secret_arn = (None, None)
    if args.endpoint:
        queue_url, secret_arn = set_up_moto(args.endpoint, table, with_secret=True)

    api = start_api()
    host, port = api.server_address
    base_env = {
        "PATH": "/usr/bin:/bin",
        "AWS_LAMBDA_RUNTIME_API": f"{host}:{port}",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/ember/bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_SESSION_TOKEN": "test",
        "AWS_ENDPOINT_URL": endpoint,
        "HOME": tempfile.mkdtemp(prefix="ember-coldstart-home-"),  # no ~/.aws, as on Lambda
        "EMBER_MODEL": os.path.abspath(args.model),
        "EMBER_TABLE": table,
        "EMBER_BUS": table,
        "EMBER_SES_CONFIGURATION_SET": table,
        "EMBER_PUBLIC_URL": "https://api.example.com",
        "RUST_LOG": "info",
    }
    if queue_url:
        base_env["EMBER_DLQ_URL"] = queue_url
    # The sample request's write key, configured as the stack's secret would configure it (its
    # SHA-256, any origin), so that the ingest invocations are accepted.
    with open(args.event) as f:
        auth = json.load(f)["headers"].get("authorization", "")
    if auth.startswith("Bearer "):
        digest = hashlib.sha256(auth[len("Bearer "):].encode()).hexdigest()
        base_env["EMBER_WRITE_KEYS"] = f"sha256:{digest}@*"

    variants = [("no secret", None)]
    if secret_arn:
        variants.append(("secret from moto", secret_arn))

    binaries = ["hello-lambda"] + [f"ember-{f}" for f in FUNCTIONS]
    missing = [b for b in binaries if not os.path.exists(os.path.join(args.dir, b))]
    if "hello-lambda" in missing:
        raise RuntimeError(f"no hello-lambda in {args.dir}: the floor is required")
    binaries = [b for b in binaries if b not in missing]
    log_path = os.path.join(args.dir, "coldstart.log")
    results = {}
    with open(log_path, "w") as log:
        for label, arn in variants:
            times = {b: [] for b in binaries}
            for _ in range(args.runs):
                for b in binaries:
                    env = dict(base_env, AWS_LAMBDA_FUNCTION_NAME=b)
                    if arn:
                        env["EMBER_SECRETS_ARN"] = arn
                    times[b].append(cold_start(api, os.path.join(args.dir, b), env, log))
            results[label] = {b: stats(t) for b, t in times.items()}
        durations = None
        if args.endpoint and "ember-ingest" in binaries:
            env = dict(base_env, AWS_LAMBDA_FUNCTION_NAME="ember-ingest", EMBER_SECRETS_ARN=secret_arn)
            ds = invoke_durations(api, os.path.join(args.dir, "ember-ingest"), env, log, ingest_events(args.event, args.invocations))
            durations = {"first": ds[0], "warm": stats(ds[1:]), "events_per_invocation": len(json.loads(ingest_events(args.event, 1)[0]["body"])["batch"])}

    if args.json:
        print(json.dumps({"cold_start_ms": results, "ingest_duration_ms": durations, "not_measured": missing}, indent=2))
        return
    if missing:
        print(f"not measured (no binary in {args.dir}): {', '.join(missing)}")
    for label, r in results.items():
        hello = r["hello-lambda"]["median"]
        print(f"\ncold start, process spawn -> first `next` ({label}; median of {args.runs} runs, ms):")
        print(f"  {'binary':<16} {'median':>8} {'min':>8} {'max':>8} {'x hello':>8}")
        for b in binaries:
            s = r[b]
            print(f"  {b:<16} {s['median']:8.2f} {s['min']:8.2f} {s['max']:8.2f} {s['median'] / hello:8.2f}")
    if durations:
        w = durations["warm"]
        print(f"\nember-ingest handler duration, {durations['events_per_invocation']} events per invocation, DynamoDB on moto (ms):")
        print(f"  first invocation {durations['first']:.2f}; next {w['runs']}: median {w['median']:.2f}, min {w['min']:.2f}, max {w['max']:.2f}")
    print(f"\n(process output: {log_path})")


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        print(f"coldstart: {e}", file=sys.stderr)
        sys.exit(1)
