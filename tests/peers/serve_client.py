"""Calls `pallet agent serve` with the official a2a-sdk 1.x client, once per
binding (JSONRPC, HTTP+JSON), and prints one JSON report.

Usage: serve_client.py BASE_URL

Report: {BINDING: {"transport": CLASS, "text": {state, output}, "data": {state, output},
"listed": N, "streamed": [event kinds..., final state], "canceled": STATE}}.
`text` sends a text part that is not JSON to skill `echo`; `data` a data
part; `streamed` sends with streaming on; `canceled` cancels a task of the
skill `slow`.
"""

import asyncio
import json
import sys
import uuid

import httpx
from google.protobuf import json_format

from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types import a2a_pb2


def request(skill: str, part: dict, configuration: dict | None = None) -> a2a_pb2.SendMessageRequest:
    return json_format.ParseDict(
        {
            "message": {
                "messageId": str(uuid.uuid4()),
                "role": "ROLE_USER",
                "parts": [part],
                "metadata": {"skillId": skill},
            },
            "configuration": configuration or {},
            "metadata": {"skillId": skill},
        },
        a2a_pb2.SendMessageRequest(),
    )


def output_of(task: dict) -> object:
    part = task.get("artifacts", [{}])[0].get("parts", [{}])[0]
    if "data" in part:
        return part["data"]
    return json.loads(part["text"]) if "text" in part else None


async def last_task(client, message: a2a_pb2.SendMessageRequest) -> dict:
    task = None
    async for response in client.send_message(message):
        if response.HasField("task"):
            task = response.task
    return json_format.MessageToDict(task)


async def run(http: httpx.AsyncClient, url: str, binding: str) -> dict:
    card = await A2ACardResolver(http, url).get_agent_card()
    blocking = ClientFactory(
        ClientConfig(streaming=False, httpx_client=http, supported_protocol_bindings=[binding])
    ).create(card)
    streaming = ClientFactory(
        ClientConfig(streaming=True, httpx_client=http, supported_protocol_bindings=[binding])
    ).create(card)
    # The transport class the factory chose for the binding.
    report = {"transport": type(getattr(blocking, "_transport", None)).__name__}
    text = await last_task(blocking, request("echo", {"text": "hello agent"}))
    report["text"] = {"state": text["status"]["state"], "output": output_of(text)}
    data = await last_task(blocking, request("echo", {"data": {"n": 7}}))
    report["data"] = {"state": data["status"]["state"], "output": output_of(data)}
    listed = await blocking.list_tasks(a2a_pb2.ListTasksRequest(page_size=10))
    report["listed"] = len(listed.tasks)
    streamed, last = [], None
    async for response in streaming.send_message(request("echo", {"data": {"s": 1}})):
        kind = response.WhichOneof("payload")
        streamed.append(kind)
        if kind == "status_update":
            last = a2a_pb2.TaskState.Name(response.status_update.status.state)
    kinds = {"task": "task", "status_update": "statusUpdate", "artifact_update": "artifactUpdate", "message": "message"}
    report["streamed"] = [kinds.get(kind, kind) for kind in streamed] + [last]
    slow = await last_task(blocking, request("slow", {"data": {}}, {"returnImmediately": True}))
    canceled = await blocking.cancel_task(a2a_pb2.CancelTaskRequest(id=slow["id"]))
    report["canceled"] = a2a_pb2.TaskState.Name(canceled.status.state)
    return report


async def main(url: str) -> dict:
    async with httpx.AsyncClient(timeout=60) as http:
        return {binding: await run(http, url, binding) for binding in ["JSONRPC", "HTTP+JSON"]}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1]))))
