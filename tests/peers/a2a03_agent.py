"""A real A2A 0.3 agent for pallet's integration tests, built on the official
Python SDK a2a-sdk 0.3.x (installed in .venv-a2a03 by scripts/setup-test-env.sh).

Usage: a2a03_agent.py PORT [NAME] [--skills=a,b,...]

Skills named with --skills behave like `echo`.

Serves JSON-RPC at / (card: protocolVersion 0.3.0, preferredTransport JSONRPC).
Exits when its standard input closes, so a test process that dies leaves no
agent behind.

Skills (the skill id comes from `metadata.skillId` of the request or message):
  echo       artifact with the input as one data part
  echo_text  artifact with one text part holding the input as JSON
  fail       task failed with a status message
  slow       works for `seconds` (default 60); stops at once when cancelled
  metadata   artifact {"message": message metadata, "params": request metadata}
"""

import asyncio
import json
import logging
import os
import sys
import threading

import uvicorn

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.apps import A2AStarletteApplication
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentSkill,
    DataPart,
    Part,
    TaskState,
    TextPart,
)
from a2a.utils import new_agent_text_message, new_task

SKILLS = ["echo", "echo_text", "fail", "slow", "metadata"]


def skill_input(context: RequestContext):
    """The first data part of the message, or {} when there is none."""
    for part in context.message.parts if context.message else []:
        if isinstance(part.root, DataPart):
            return part.root.data
    return {}


def skill_id(context: RequestContext) -> str:
    if context.metadata.get("skillId"):
        return context.metadata["skillId"]
    metadata = (context.message.metadata or {}) if context.message else {}
    return metadata.get("skillId", "")


class TestExecutor(AgentExecutor):
    def __init__(self, extra_skills: list[str]):
        self.extra_skills = extra_skills

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        skill = skill_id(context)
        data = skill_input(context)
        task = context.current_task or new_task(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        if skill == "echo" or skill in self.extra_skills:
            await updater.add_artifact([Part(root=DataPart(data=data))])
            await updater.complete()
        elif skill == "echo_text":
            await updater.add_artifact([Part(root=TextPart(text=json.dumps(data)))])
            await updater.complete()
        elif skill == "metadata":
            message = (context.message.metadata or {}) if context.message else {}
            await updater.add_artifact(
                [Part(root=DataPart(data={"message": message, "params": context.metadata}))]
            )
            await updater.complete()
        elif skill == "slow":
            await asyncio.sleep(data.get("seconds", 60) if isinstance(data, dict) else 60)
            await updater.add_artifact([Part(root=DataPart(data=data))])
            await updater.complete()
        else:
            text = "the skill failed on purpose" if skill == "fail" else f"unknown skill {skill!r}"
            await updater.update_status(
                TaskState.failed,
                new_agent_text_message(text, task.context_id, task.id),
                final=True,
            )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        # The framework cancels the running execute() after this returns.
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.cancel(
            new_agent_text_message("cancelled by the client", context.context_id, context.task_id)
        )


def agent_card(name: str, port: int, skills: list[str]) -> AgentCard:
    return AgentCard(
        name=name,
        description="pallet test agent (a2a-sdk 0.3)",
        url=f"http://127.0.0.1:{port}/",
        version="1.0.0",
        protocol_version="0.3.0",
        preferred_transport="JSONRPC",
        capabilities=AgentCapabilities(streaming=False),
        default_input_modes=["application/json"],
        default_output_modes=["application/json"],
        skills=[
            AgentSkill(id=skill, name=skill, description=f"test skill {skill}", tags=["test"])
            for skill in skills
        ],
    )


def exit_when_stdin_closes() -> None:
    def watch() -> None:
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    exit_when_stdin_closes()
    args = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    port = int(args[0])
    name = args[1] if len(args) > 1 else "a2a03-test-agent"
    extra_skills = [
        skill
        for arg in sys.argv
        if arg.startswith("--skills=")
        for skill in arg.removeprefix("--skills=").split(",")
        if skill
    ]
    logging.getLogger("a2a").setLevel(logging.CRITICAL)
    card = agent_card(name, port, SKILLS + extra_skills)
    handler = DefaultRequestHandler(
        agent_executor=TestExecutor(extra_skills), task_store=InMemoryTaskStore()
    )
    app = A2AStarletteApplication(agent_card=card, http_handler=handler).build()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
