"""Calls an A2A agent with the official a2a-sdk client and prints what it got.

Usage: a2a_client.py AGENT_URL SKILL_ID INPUT_JSON

Fetches the agent card, sends one message whose data part is INPUT_JSON and
whose metadata names the skill, then fetches the task again with GetTask.
Prints one JSON object: {"card": ..., "task": ..., "fetched": ...}, or
{"error": {"type": ..., "message": ...}} when the SDK raised an A2A error.
"""

import asyncio
import json
import sys
import uuid

import httpx
from google.protobuf import json_format

from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types import a2a_pb2


async def call(url: str, skill_id: str, payload: object) -> dict:
    async with httpx.AsyncClient(timeout=60) as http:
        factory = ClientFactory(ClientConfig(streaming=False, httpx_client=http))
        agent_card = await A2ACardResolver(http, url).get_agent_card()
        client = factory.create(agent_card)
        card = json_format.MessageToDict(agent_card)
        request = json_format.ParseDict(
            {
                "message": {
                    "messageId": str(uuid.uuid4()),
                    "role": "ROLE_USER",
                    "parts": [{"data": payload, "mediaType": "application/json"}],
                    "metadata": {"skillId": skill_id},
                },
                "metadata": {"skillId": skill_id},
            },
            a2a_pb2.SendMessageRequest(),
        )
        try:
            task = None
            async for response in client.send_message(request):
                if response.HasField("task"):
                    task = response.task
            if task is None:
                return {"error": {"type": "NoTask", "message": "the agent answered without a task"}}
            fetched = await client.get_task(a2a_pb2.GetTaskRequest(id=task.id))
        except Exception as error:  # the SDK maps JSON-RPC errors to exception types
            return {"card": card, "error": {"type": type(error).__name__, "message": str(error)}}
        return {
            "card": card,
            "task": json_format.MessageToDict(task),
            "fetched": json_format.MessageToDict(fetched),
        }


def main() -> None:
    url, skill_id, payload = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    print(json.dumps(asyncio.run(call(url, skill_id, payload))))


if __name__ == "__main__":
    main()
