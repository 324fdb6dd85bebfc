"""Calls `pallet agent serve` with the official a2a-sdk 0.3 client (A2A 0.3,
JSON-RPC, no `A2A-Version` header) and prints one JSON report.

Usage: serve_client03.py BASE_URL

Report: {"text": {state, output}, "streamed": [event kinds..., final state],
"canceled": STATE}; `text` sends a text part that is not JSON to skill
`echo`, `canceled` cancels a task of the skill `slow`.
"""

import asyncio
import json
import sys
import uuid

import httpx

from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types import Message, MessageSendConfiguration, Part, Role, TaskIdParams, TextPart


def message(skill: str, text: str) -> Message:
    return Message(
        message_id=str(uuid.uuid4()),
        role=Role.user,
        parts=[Part(root=TextPart(text=text))],
        metadata={"skillId": skill},
    )


def output_of(task) -> object:
    part = task.artifacts[0].parts[0].root
    return part.data if part.kind == "data" else json.loads(part.text)


async def main(url: str) -> dict:
    async with httpx.AsyncClient(timeout=60) as http:
        card = await A2ACardResolver(http, url).get_agent_card()
        blocking = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
        streaming = ClientFactory(ClientConfig(streaming=True, httpx_client=http)).create(card)
        report = {}
        task = None
        async for event in blocking.send_message(message("echo", "hello agent")):
            task = event[0]
        report["text"] = {"state": task.status.state.value, "output": output_of(task)}
        kinds, last = [], None
        async for event in streaming.send_message(message("echo", '{"s": 1}')):
            task, update = event
            kinds.append(update.kind if update is not None else "task")
            last = task.status.state.value
        report["streamed"] = kinds + [last]
        at_once = MessageSendConfiguration(blocking=False)
        async for event in blocking.send_message(message("slow", "{}"), configuration=at_once):
            task = event[0]
        canceled = await blocking.cancel_task(TaskIdParams(id=task.id))
        report["canceled"] = canceled.status.state.value
        return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1]))))
