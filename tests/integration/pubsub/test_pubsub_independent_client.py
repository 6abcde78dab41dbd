"""Acceptance: a Pub/Sub client written only from the public proto can subscribe and decode events.

The client below is compiled at test time from ``pubsub_api.proto`` into a temporary folder and
runs in its own interpreter: it uses raw grpc + fastavro, the documented auth headers and the
documented flow (GetTopic -> GetSchema -> Subscribe with flow control), and never imports
orderflow's generated modules or client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from grpc_tools import protoc
from pubsub_env import TOPIC, PubSubEnv

PROTO = Path(__file__).resolve().parents[3] / "include" / "orderflow" / "salesforce" / "pubsub" / "pubsub_api.proto"

CLIENT = textwrap.dedent(
    '''
    import io, json, queue, sys
    import fastavro, grpc
    import pubsub_api_pb2 as pb2
    import pubsub_api_pb2_grpc as pb2_grpc

    cfg = json.loads(sys.stdin.read())
    md = (("accesstoken", cfg["token"]), ("instanceurl", cfg["instance_url"]), ("tenantid", cfg["org_id"]))
    creds = grpc.ssl_channel_credentials(open(cfg["ca"], "rb").read())
    with grpc.secure_channel(cfg["endpoint"], creds) as channel:
        stub = pb2_grpc.PubSubStub(channel)
        topic = stub.GetTopic(pb2.TopicRequest(topic_name=cfg["topic"]), metadata=md)
        schemas = {}
        requests = queue.Queue()
        requests.put(pb2.FetchRequest(topic_name=cfg["topic"], replay_preset=pb2.ReplayPreset.EARLIEST,
                                      num_requested=2))
        out = []
        call = stub.Subscribe(iter(requests.get, None), metadata=md)
        for resp in call:
            for ev in resp.events:
                sid = ev.event.schema_id
                if sid not in schemas:
                    info = stub.GetSchema(pb2.SchemaRequest(schema_id=sid), metadata=md)
                    schemas[sid] = fastavro.parse_schema(json.loads(info.schema_json))
                record = fastavro.schemaless_reader(io.BytesIO(ev.event.payload), schemas[sid], None)
                out.append({"replay_id": int.from_bytes(ev.replay_id, "big"), "record": record,
                            "id": ev.event.id})
            if len(out) >= cfg["expect"]:
                break
            if resp.pending_num_requested == 0:
                requests.put(pb2.FetchRequest(topic_name=cfg["topic"], num_requested=2))
        requests.put(None)
        call.cancel()
    loaded = sorted(m for m in sys.modules if m.startswith("orderflow"))
    print(json.dumps({"topic_schema_id": topic.schema_id, "events": out, "orderflow_modules": loaded}))
    '''
)


def test_a_client_built_only_from_the_public_proto_subscribes_and_decodes(pubsub: PubSubEnv, tmp_path: Path) -> None:
    ids = pubsub.publish(5)
    out_dir = tmp_path / "independent"
    out_dir.mkdir()
    assert protoc.main(["grpc_tools.protoc", f"--proto_path={PROTO.parent}", f"--python_out={out_dir}",
                        f"--grpc_python_out={out_dir}", PROTO.name]) == 0
    (out_dir / "client.py").write_text(CLIENT)
    config = {"token": pubsub.token(), "instance_url": pubsub.org.instance_url, "org_id": pubsub.org.org_id,
              "ca": str(pubsub.tls.ca_cert), "endpoint": pubsub.endpoint, "topic": TOPIC, "expect": 5}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "client.py"], cwd=out_dir, input=json.dumps(config), env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)

    assert result["orderflow_modules"] == []
    assert [e["replay_id"] for e in result["events"]] == ids
    records = [e["record"] for e in result["events"]]
    assert [r["IdemKey__c"] for r in records] == [f"k{i}" for i in range(5)]
    assert records[0]["OrderId__c"] == "801000000000000000"
    assert all(isinstance(r["CreatedDate"], int) and r["CreatedById"] for r in records)
    assert len({e["id"] for e in result["events"]}) == 5
