"""`GET /v1/openapi.json` stays true: every route the app registers is in the document and every
route in the document is registered (method and path, both ways), and real answers of a running
node match the documented response schemas."""

from __future__ import annotations

import re
from pathlib import Path

import msgpack
import pytest
from nodeproc import Author, Cluster, init_agent, post_actions, request

from node.config import load_config
from node.http.openapi import MSGPACK, ROUTES, document, path_params
from node.http.routes import build_app
from node.node import VERSION, Node


def routes_of_app(tmp_path: Path) -> set[tuple[str, str]]:
    agent = init_agent(tmp_path, "router")
    node = Node(load_config(agent.dir))
    try:
        app = build_app(node.http)
        return {
            (r.method, r.resource.canonical)
            for r in app.router.routes()
            if r.method != "HEAD" and r.resource is not None
        }
    finally:
        node.journal.close()
        node.store.close()


def test_the_document_and_the_router_list_the_same_routes(tmp_path):
    registered = routes_of_app(tmp_path)
    doc = document(VERSION)
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert registered - documented == set(), "routes missing from node/openapi.py ROUTES"
    assert documented - registered == set(), "documented routes the app does not register"
    assert doc["openapi"] == "3.1.0" and doc["info"]["version"] == VERSION
    for path, ops in doc["paths"].items():
        for operation in ops.values():
            in_path = [p["name"] for p in operation["parameters"] if p["in"] == "path"]
            assert in_path == path_params(path)
            assert "200" in operation["responses"] and operation["summary"]


# -- a small JSON-schema checker for the subset the document uses ----------------------------------

TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def check(value, schema: dict, where: str = "$") -> list[str]:
    if "anyOf" in schema:
        if all(check(value, s, where) for s in schema["anyOf"]):
            return [f"{where}: matches none of {schema['anyOf']}"]
        return []
    kind = schema.get("type")
    if kind is not None:
        types = TYPES[kind]
        if kind == "string" and schema.get("contentEncoding") == "binary":
            types = (bytes,)
        if not isinstance(value, types) or (
            kind in ("integer", "number") and isinstance(value, bool)
        ):
            return [f"{where}: {type(value).__name__} is not {kind}"]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and value < schema["minimum"]:
        problems.append(f"{where}: {value} < {schema['minimum']}")
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            problems.append(f"{where}: {len(value)} items")
        prefix = schema.get("prefixItems", [])
        for i, item in enumerate(value):
            item_schema = prefix[i] if i < len(prefix) else schema.get("items", {})
            problems += check(item, item_schema, f"{where}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{where}: missing {key!r}")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                problems += check(item, props[key], f"{where}.{key}")
            elif extra is False:
                problems.append(f"{where}: undocumented key {key!r}")
            elif isinstance(extra, dict):
                problems += check(item, extra, f"{where}.{key}")
    return problems


def test_check_itself_catches_what_it_should():
    schema = ROUTES[("GET", "/v1/agents/{id}/audit")]["response"]
    good = {"agent": "ab" * 32, "status": "valid", "length": 3, "problems": []}
    assert check(good, schema) == []
    assert check({**good, "status": "fine"}, schema)
    assert check({**good, "extra": 1}, schema)
    assert check({k: v for k, v in good.items() if k != "length"}, schema)
    assert check({**good, "length": True}, schema)


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("openapi")) as c:
        a = c.found("A")
        c.start(a, rate_limit=100_000)
        author = Author(name="documented")
        post_actions(a.url, author.extend(4))
        yield a, author


def fill(path: str, a, author: Author) -> str:
    return (
        path.replace("{id}", a.agent_hex)
        .replace("{author_hex}", author.agent_hex)
        .replace("{hash}", author.actions[1].hash.hex())
        .replace("{k}", "0")
        .replace("{name}", "dashboard.css")
    ) + ("?nonce=" + "ab" * 32 if path == "/v1/gossip/proof" else "")


def decode(resp, content: str):
    if content == MSGPACK:
        return msgpack.unpackb(resp.body, raw=False, strict_map_key=False)
    if content.startswith("application/json"):
        return resp.json()
    return resp.body.decode()


def test_the_served_document_is_the_document(running):
    a, _ = running
    resp = request("GET", f"{a.url}/v1/openapi.json")
    assert resp.status == 200 and resp.headers["access-control-allow-origin"] == "*"
    assert resp.json() == document(VERSION)


@pytest.mark.parametrize("method,path", sorted(k for k in ROUTES if k[0] == "GET"))
def test_every_get_answer_matches_its_schema(running, method, path):
    a, author = running
    entry = ROUTES[(method, path)]
    url = a.url + fill(path, a, author)
    resp = request("GET", url)
    assert resp.status == 200, (url, resp.body[:300])
    content = entry["content"]
    assert resp.headers["content-type"].split(";")[0] in (
        content,
        "text/css",
        "text/javascript",
        "image/svg+xml",
    )
    if content in (MSGPACK, "application/json"):
        assert check(decode(resp, content), entry["response"]) == []
    for other, schema in entry["alternatives"].items():
        if other == "application/json":
            alt = request("GET", url, headers={"Accept": other})
            assert check(alt.json(), schema) == []


def test_every_post_answer_and_error_matches_its_schema(running):
    a, author = running
    error = document()["paths"]["/v1/agents/{id}"]["get"]["responses"]["404"]
    error_schema = error["content"]["application/json"]["schema"]
    answers = {
        "/v1/gossip/actions": [author.next().wire()],
        "/v1/gossip/peers": [],
    }
    for path, body in answers.items():
        resp = request(
            "POST", a.url + path, msgpack.packb(body, use_bin_type=True), {"Content-Type": MSGPACK}
        )
        assert resp.status == 200
        assert check(resp.msgpack(), ROUTES[("POST", path)]["response"]) == []
    charter = request("GET", f"{a.url}/v1/community/charter").body
    resp = request("POST", f"{a.url}/v1/community/charter", charter, {"Content-Type": MSGPACK})
    assert resp.status == 400 and check(resp.json(), error_schema) == []  # not newer
    resp = request("GET", f"{a.url}/v1/agents/{Author().agent_hex}")
    assert resp.status == 404 and check(resp.json(), error_schema) == []
