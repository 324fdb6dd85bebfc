"""An agent built like the Python original's: FastAPI + pydantic 2.

Usage: legacy_agent.py PORT NAME SKILL[,SKILL...] [--exit-on-stdin-eof]

- `GET /agent-card`: `{name, url, skills: [{id, description, input_schema, output_schema}]}`
- `POST /execute`: the JSON-RPC request as the original declares it, so a
  number `id` is refused with HTTP 422 ("Input should be a valid string")
  exactly as the original agents refuse it.

Skills (deterministic, shaped for workflows/code-generation.yaml):
- `create_plan` {requirements} -> {title, requirements, steps}
- `generate_code` {plan} -> {code, language, plan_title}
- `review_code` {code, language} -> {approved, issues, language, lines}

Every request body is appended to the file named by the environment variable
LEGACY_AGENT_LOG (one JSON line each), so a test can read the ids it sent.
"""

import json
import os
import sys
import threading
from typing import Any, Dict, Optional

import uvicorn
from fastapi import FastAPI, Request
from pydantic import BaseModel


class JsonRpcRequest(BaseModel):
    """The original's request model, field for field."""

    jsonrpc: str
    method: str
    params: Dict[str, Any]
    id: Optional[str] = None


def create_plan(params: Dict[str, Any]) -> Dict[str, Any]:
    requirements = str(params.get("requirements", ""))
    return {
        "title": f"Plan: {requirements}",
        "requirements": requirements,
        "steps": [
            {"name": "implement", "description": requirements},
            {"name": "test", "description": "check the function"},
        ],
    }


def generate_code(params: Dict[str, Any]) -> Dict[str, Any]:
    plan = params.get("plan") or {}
    title = plan.get("title", "") if isinstance(plan, dict) else str(plan)
    return {
        "code": "def solution(n):\n    return n\n",
        "language": "python",
        "plan_title": title,
    }


def review_code(params: Dict[str, Any]) -> Dict[str, Any]:
    code = str(params.get("code", ""))
    return {
        "approved": code.startswith("def "),
        "issues": [],
        "language": params.get("language"),
        "lines": len(code.splitlines()),
    }


SKILLS = {
    "create_plan": (create_plan, "Turns requirements into a plan"),
    "generate_code": (generate_code, "Writes code for a plan"),
    "review_code": (review_code, "Reviews code"),
}


def build_app(name: str, url: str, skills: list) -> FastAPI:
    app = FastAPI()
    log_path = os.environ.get("LEGACY_AGENT_LOG")

    @app.middleware("http")
    async def record(request: Request, call_next):
        if log_path and request.url.path == "/execute":
            body = await request.body()
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(body.decode("utf-8", "replace").replace("\n", " ") + "\n")
        return await call_next(request)

    @app.get("/agent-card")
    def agent_card() -> Dict[str, Any]:
        return {
            "name": name,
            "url": url,
            "skills": [
                {
                    "id": skill,
                    "description": SKILLS[skill][1],
                    "input_schema": {"type": "object"},
                    "output_schema": {"type": "object"},
                }
                for skill in skills
            ],
        }

    @app.post("/execute")
    def execute(request: JsonRpcRequest) -> Dict[str, Any]:
        if request.method not in skills:
            return {
                "jsonrpc": "2.0",
                "error": {"code": -32601, "message": f"unknown skill {request.method}"},
                "id": request.id,
            }
        result = SKILLS[request.method][0](request.params)
        return {"jsonrpc": "2.0", "result": result, "id": request.id}

    return app


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
    name = args[1]
    skills = [skill for skill in args[2].split(",") if skill]
    unknown = [skill for skill in skills if skill not in SKILLS]
    if unknown:
        sys.exit(f"unknown skills {unknown}; known: {sorted(SKILLS)}")
    app = build_app(name, f"http://127.0.0.1:{port}", skills)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
