"""A real A2A 1.0 agent for pallet's integration tests, built on the official SDK.

Usage: a2a_agent.py PORT [NAME] [--skills=a,b,...] [--exit-on-stdin-eof]

Skills named with --skills behave like `echo`.

With --exit-on-stdin-eof the agent exits when its standard input closes, so a
test process that dies (or never drops its handle) leaves no agent behind.

Skills (the skill id comes from `metadata.skillId` of the request):
  echo         artifact with the input as one data part
  echo_text    artifact with one text part holding the input as JSON
  pair         artifact with two data parts: the input, then {"second": true}
  reply        an immediate message (no task) with the input as a data part
  fail         task FAILED with a status message
  slow         works for `seconds` (default 60); stops at once when cancelled
  needs_input  task INPUT_REQUIRED with a status message
  invalid      JSON-RPC error (invalid params) before any task exists
  metadata     artifact {"message": message metadata, "params": request metadata}
"""

import asyncio
import logging
import json
import os
import sys
import threading

import uvicorn
from google.protobuf import json_format
from starlette.applications import Starlette

from a2a.helpers import (
    get_data_parts,
    new_data_part,
    new_task,
    new_text_message,
    new_text_part,
)
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Message,
    Role,
    TaskState,
)
from a2a.utils.errors import InvalidParamsError

SKILLS = ["echo", "echo_text", "pair", "reply", "fail", "slow", "needs_input", "invalid", "metadata"]


def skill_input(context: RequestContext):
    """The first data part of the message, or {} when there is none."""
    parts = get_data_parts(context.message.parts) if context.message else []
    return parts[0] if parts else {}


def skill_id(context: RequestContext) -> str:
    from_params = context.metadata.get("skillId")
    if from_params:
        return from_params
    if context.message and "skillId" in context.message.metadata:
        return context.message.metadata["skillId"]
    return ""


class TestExecutor(AgentExecutor):
    def __init__(self, extra_skills: list[str]):
        self.extra_skills = extra_skills

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        skill = skill_id(context)
        data = skill_input(context)
        if skill == "invalid":
            raise InvalidParamsError(message="input rejected by skill invalid")
        if skill == "reply":
            reply = Message(
                message_id=f"reply-{context.task_id}",
                role=Role.ROLE_AGENT,
                parts=[new_data_part(data)],
            )
            await event_queue.enqueue_event(reply)
            return
        # The SDK requires the task to exist before any status update.
        await event_queue.enqueue_event(
            new_task(context.task_id, context.context_id, TaskState.TASK_STATE_SUBMITTED)
        )
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.start_work()
        if skill == "metadata":
            data = {
                "message": json_format.MessageToDict(context.message.metadata),
                "params": context.metadata,
            }
            skill = "echo"
        await self.run_skill(skill, data, updater)

    async def run_skill(self, skill: str, data, updater: TaskUpdater) -> None:
        if skill == "echo":
            await updater.add_artifact([new_data_part(data)])
            await updater.complete()
        elif skill == "echo_text":
            await updater.add_artifact([new_text_part(json.dumps(data))])
            await updater.complete()
        elif skill == "pair":
            await updater.add_artifact([new_data_part(data), new_data_part({"second": True})])
            await updater.complete()
        elif skill == "fail":
            await updater.failed(self.status_message(updater, "the skill failed on purpose"))
        elif skill == "slow":
            seconds = data.get("seconds", 60) if isinstance(data, dict) else 60
            await asyncio.sleep(seconds)
            await updater.add_artifact([new_data_part(data)])
            await updater.complete()
        elif skill == "needs_input":
            await updater.requires_input(self.status_message(updater, "tell me more about the input"))
        elif skill in self.extra_skills:
            await self.run_skill("echo", data, updater)
        else:
            await updater.failed(self.status_message(updater, f"unknown skill {skill!r}"))

    @staticmethod
    def status_message(updater: TaskUpdater, text: str) -> Message:
        return new_text_message(text, context_id=updater.context_id, task_id=updater.task_id, role=Role.ROLE_AGENT)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        # The framework cancels the running execute() after this returns.
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.cancel(self.status_message(updater, "cancelled by the client"))


def agent_card(name: str, port: int, skills: list[str]) -> AgentCard:
    return AgentCard(
        name=name,
        description="pallet test agent",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=f"http://127.0.0.1:{port}/", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
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
    args = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    if "--exit-on-stdin-eof" in sys.argv:
        exit_when_stdin_closes()
    port = int(args[0])
    name = args[1] if len(args) > 1 else "a2a-test-agent"
    # The `invalid` skill raises on purpose; the SDK would log a traceback.
    logging.getLogger("a2a").setLevel(logging.CRITICAL)
    extra_skills = [
        skill
        for arg in sys.argv
        if arg.startswith("--skills=")
        for skill in arg.removeprefix("--skills=").split(",")
        if skill
    ]
    card = agent_card(name, port, SKILLS + [s for s in extra_skills if s not in SKILLS])
    handler = DefaultRequestHandler(
        agent_executor=TestExecutor(extra_skills), task_store=InMemoryTaskStore(), agent_card=card
    )
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, "/")
    app = Starlette(routes=routes)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
