//! The OpenAPI 3.1 document of the service, built in code next to the routes
//! it describes; a test checks both name the same paths and methods.

use serde_json::{Value, json};

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn run_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Run"}}}
    })
}

fn id_parameter() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}})
}

fn last_event_id() -> Value {
    json!({"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}, "description": "Resume after this event (the `id:` of an event the stream sent); sent by EventSource when it reconnects"})
}

fn after_parameter() -> Value {
    json!({"name": "after", "in": "query", "schema": {"type": "string"}, "description": "As Last-Event-ID, for clients that cannot set headers; `0` replays from the first event"})
}

fn events_response() -> Value {
    json!({
        "description": "`text/event-stream`: each event's `id:` is its event id and its `data:` an Event (JSON); a comment every 15 s keeps the stream open",
        "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/Event"}}}
    })
}

fn json_body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn paths() -> Value {
    json!({
        "/workflows": {
            "post": {
                "summary": "Start a run; it executes in the background",
                "requestBody": json_body("StartRequest"),
                "responses": {
                    "201": run_response("The run, just started"),
                    "400": problem("The body is not JSON"),
                    "408": problem("The body did not arrive within the body timeout"),
                    "413": problem("The body, or the run's input, is too large"),
                    "422": problem("Invalid input, malformed reference (`pointer` names the field), unknown workflow, or an input that does not fit the workflow's `inputs` (`errors` lists every problem)"),
                    "429": {
                        "description": "Too many runs executing, or their inputs too large: retry later",
                        "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
                        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
                    },
                    "503": problem("The workflow source (registry) cannot be reached now")
                }
            },
            "get": {
                "summary": "List runs, newest first",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"$ref": "#/components/schemas/Status"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous page"},
                    {"name": "workflow", "in": "query", "schema": {"type": "string"}, "description": "Only the runs of this workflow id"}
                ],
                "responses": {
                    "200": {"description": "One page of runs", "content": {"application/json": {"schema": {
                        "type": "object",
                        "properties": {
                            "runs": {"type": "array", "items": {"type": "object"}},
                            "next_cursor": {"type": ["string", "null"]}
                        }
                    }}}},
                    "422": problem("Invalid status, limit or cursor")
                }
            }
        },
        "/workflows/{id}": {
            "get": {
                "summary": "A run with its progress and time in each state",
                "parameters": [id_parameter()],
                "responses": {"200": run_response("The run"), "404": problem("No such run")}
            }
        },
        "/workflows/{id}/history": {
            "get": {
                "summary": "Every state transition of a run",
                "parameters": [id_parameter()],
                "responses": {
                    "200": {"description": "The transitions in order", "content": {"application/json": {"schema": {
                        "type": "object",
                        "properties": {"id": {"type": "string"}, "transitions": {"type": "array", "items": {"$ref": "#/components/schemas/Transition"}}}
                    }}}},
                    "404": problem("No such run")
                }
            }
        },
        "/workflows/{id}/events": {
            "get": {
                "summary": "The run's events as Server-Sent Events: every event from its creation (or after `Last-Event-ID`), then live ones; an `end` event once the run has ended",
                "parameters": [id_parameter(), last_event_id(), after_parameter()],
                "responses": {
                    "200": events_response(),
                    "404": problem("No such run"),
                    "422": problem("`Last-Event-ID` or `after` is not an event id"),
                    "429": problem("Too many event streams open (--max-event-streams)")
                }
            }
        },
        "/workflows/{id}/advance": {
            "post": {
                "summary": "Decide the approval a run waits for; the run continues in the background",
                "parameters": [id_parameter()],
                "requestBody": json_body("AdvanceRequest"),
                "responses": {
                    "200": run_response("The run after the decision"),
                    "400": problem("The body is not JSON"),
                    "404": problem("No such run"),
                    "409": problem("The run does not wait for approval, or the trigger is agent_complete (the runner records agent completion itself)"),
                    "422": problem("Invalid trigger or missing required fields")
                }
            }
        },
        "/workflows/{id}/cancel": {
            "post": {
                "summary": "Cancel a run",
                "parameters": [id_parameter()],
                "responses": {
                    "200": run_response("The cancelled run"),
                    "404": problem("No such run"),
                    "409": problem("The run has ended")
                }
            }
        },
        "/workflows/{id}/resume": {
            "post": {
                "summary": "Continue an interrupted run, or apply an expired approval's on_timeout; the run continues in the background",
                "parameters": [id_parameter()],
                "responses": {
                    "202": run_response("The run, continuing in the background"),
                    "200": run_response("The run, failed by its expired approval's on_timeout: reject"),
                    "404": problem("No such run"),
                    "409": problem("The run waits for an approval that has not expired, has ended, or is already executing in this service")
                }
            }
        },
        "/workflows/{id}/rerun": {
            "post": {
                "summary": "Start a new run of this run's workflow (its recorded text, the same digest) and input from a top-level step: the steps before it reuse this run's recorded outputs (their agents are not called), the step and all after it run; it executes in the background",
                "parameters": [id_parameter()],
                "requestBody": json_body("RerunRequest"),
                "responses": {
                    "201": run_response("The new run, just started; `rerun_of` names this run and the step"),
                    "400": problem("The body is not JSON"),
                    "404": problem("No such run"),
                    "422": problem("`from` is not a top-level step of the run's workflow (the detail lists them), is nested in one (the detail names it), or a step before it did not complete in this run"),
                    "429": {
                        "description": "Too many runs executing, or their inputs too large: retry later",
                        "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
                        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
                    }
                }
            }
        },
        "/health": {
            "get": {
                "summary": "Liveness and readiness; needs no token",
                "security": [],
                "responses": {
                    "200": {"description": "The service is up", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                    "503": {"description": "Degraded: runs cannot be recorded now (`reason` says why)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}
                }
            }
        },
        "/definitions": {
            "get": {
                "summary": "The workflow a run of `workflow` would execute: id, name, version, digest, source, and its declared `inputs` (name, required, default, description, JSON Schema) or null",
                "parameters": [{"name": "workflow", "in": "query", "required": true, "schema": {"type": "string"}, "description": "A reference as POST /workflows takes it"}],
                "responses": {
                    "200": {"description": "The definition", "content": {"application/json": {}}},
                    "422": problem("Not a workflow reference, or no such workflow"),
                    "503": problem("The workflow source (registry) cannot be reached now")
                }
            }
        },
        "/events": {
            "get": {
                "summary": "Events of every run (or of one workflow or run) as Server-Sent Events: live ones from now, or every one after `Last-Event-ID` / `after`",
                "parameters": [
                    {"name": "workflow", "in": "query", "schema": {"type": "string"}, "description": "Only the runs of this workflow id"},
                    {"name": "run", "in": "query", "schema": {"type": "string"}, "description": "Only this run (as /workflows/{id}/events, without the `end` event's check of an unknown run)"},
                    last_event_id(),
                    after_parameter()
                ],
                "responses": {
                    "200": events_response(),
                    "422": problem("`Last-Event-ID` or `after` is not an event id, or both `run` and `workflow` given"),
                    "429": problem("Too many event streams open (--max-event-streams)")
                }
            }
        },
        "/registry/workflows": {
            "get": {
                "summary": "Workflows in the service's registry with their versions and digests (as `pallet list --json`)",
                "responses": {
                    "200": {"description": "`{registry, workflows: [{repository, versions: [{version, tag, digest}], other_tags, unreadable}]}`", "content": {"application/json": {}}},
                    "404": problem("The service runs with --offline: no registry to list"),
                    "502": problem("The registry did not answer or answered an error")
                }
            }
        },
        "/registry/workflows/{name}/{tag}": {
            "get": {
                "summary": "One workflow version: reference, digest, config, annotations (source, revision) and its YAML `source` (as `pallet show --json`)",
                "parameters": [
                    {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "tag", "in": "path", "required": true, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "The version", "content": {"application/json": {}}},
                    "404": problem("No such workflow or version, or no registry (--offline)"),
                    "422": problem("Not a workflow name or tag"),
                    "502": problem("The registry did not answer or answered an error")
                }
            }
        },
        "/registry/agents": {
            "get": {
                "summary": "Agent cards in the registry: versions, and the latest card's name, URL, skills and interfaces (protocol version and binding)",
                "responses": {
                    "200": {"description": "`{registry, agents: [...], truncated}` (at most 200 cards read)", "content": {"application/json": {}}},
                    "404": problem("The service runs with --offline: no registry to list"),
                    "502": problem("The registry did not answer or answered an error")
                }
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text format 0.0.4): runs by status, runs executing here, the queue, step durations by skill and status, retries, failures by skill and agent",
                "responses": {"200": {"description": "The metrics page", "content": {"text/plain": {"schema": {"type": "string"}}}}}
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}
            }
        }
    })
}

fn schemas() -> Value {
    json!({
        "Status": {"type": "string", "enum": ["pending", "in_progress", "waiting_approval", "completed", "failed", "cancelled"]},
        "Event": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "description": "The event id (as the SSE `id:`)"},
                "type": {"type": "string", "description": "`run.created`, `run.<status>`, `step.<status>` (running, waiting, completed, failed, cancelled, interrupted, superseded) or `step.message` (the agent's status message)"},
                "run_id": {"type": "string"},
                "workflow_id": {"type": "string"},
                "step_id": {"type": ["string", "null"]},
                "at": {"type": "string", "format": "date-time"},
                "data": {"type": "object", "description": "Run events: from, to, trigger, actor, metadata. Step events: attempt, status, agent, error, status_message, started_at, ended_at"}
            }
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details",
            "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"},
                "pointer": {"type": "string", "description": "JSON pointer of the request body field at fault, when one is"},
                "errors": {"type": "array", "description": "When the run's input does not fit the workflow's `inputs`: every problem, `pointer` into the input",
                    "items": {"type": "object", "properties": {"pointer": {"type": "string"}, "message": {"type": "string"}}}},
                "declared_inputs": {"type": "array", "items": {"type": "string"}, "description": "With `errors`: the inputs the workflow declares"}}
        },
        "Health": {
            "type": "object",
            "required": ["status", "version", "uptime_seconds"],
            "properties": {"status": {"enum": ["healthy", "degraded"]}, "reason": {"type": "string"}, "version": {"type": "string"}, "uptime_seconds": {"type": "integer"}}
        },
        "StartRequest": {"oneOf": [
            {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "workflow": {"type": "string", "default": super::types::DEFAULT_WORKFLOW, "description": "ID, ID@REQUIREMENT or ID@sha256:DIGEST"},
                    "input": {"type": "object"}
                }
            },
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["workflow_type", "feature_description"],
                "properties": {
                    "workflow_type": {"type": "string", "description": "specify, plan, tasks or implement (or a type added with --workflow-type)"},
                    "feature_description": {"type": "string", "minLength": 10},
                    "context": {"type": "object"}
                }
            }
        ]},
        "AdvanceRequest": {
            "type": "object",
            "additionalProperties": false,
            "required": ["trigger"],
            "properties": {
                "trigger": {"type": "string", "enum": ["human_approved", "human_rejected", "agent_complete"], "description": "agent_complete is refused with 409: the runner records agent completion itself"},
                "phase_result": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "comment": {"type": "string"},
                        "comments": {"type": "string", "description": "alias of comment"},
                        "fields": {"type": "object"},
                        "actor": {"type": "string"},
                        "approved": {"type": "boolean"}
                    }
                }
            }
        },
        "RerunRequest": {
            "type": "object",
            "additionalProperties": false,
            "required": ["from"],
            "properties": {"from": {"type": "string", "description": "The top-level step to run again from"}}
        },
        "Transition": {
            "type": "object",
            "properties": {
                "from": {"oneOf": [{"$ref": "#/components/schemas/Status"}, {"type": "null"}]},
                "to": {"$ref": "#/components/schemas/Status"},
                "trigger": {"type": "string"},
                "metadata": {},
                "actor": {"type": "string"},
                "at": {"type": "string", "format": "date-time"}
            }
        },
        "Run": {
            "type": "object",
            "required": ["id", "status", "progress", "time_in_state_seconds"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "workflow_ref": {"type": "string"},
                "workflow_id": {"type": "string"},
                "workflow_version": {"type": "string"},
                "workflow_digest": {"type": "string"},
                "status": {"$ref": "#/components/schemas/Status"},
                "current_step": {"type": ["string", "null"]},
                "input": {"type": "object"},
                "context": {"type": "object", "description": "step id -> outputs of completed steps"},
                "result": {},
                "error": {"type": ["string", "null"]},
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
                "completed_at": {"type": ["string", "null"], "format": "date-time"},
                "rerun_of": {"type": "object", "description": "Set on a rerun: the run it came from and the top-level step it ran again from; its attempts taken over from that run carry `reused_from`",
                    "properties": {"run_id": {"type": "string", "format": "uuid"}, "from_step": {"type": "string"}}},
                "progress": {"type": "object", "properties": {
                    "percentage": {"type": "integer", "minimum": 0, "maximum": 100},
                    "steps_completed": {"type": "integer"},
                    "steps_total": {"type": "integer"}
                }},
                "time_in_state_seconds": {"type": "object", "additionalProperties": {"type": "number"}},
                "continued_failures": {"type": "array", "items": {"type": "string"}, "description": "Steps (qualified ids such as `each[0]/scan`) whose last attempt failed and that have `continue_on_error`: the run went on without them; absent when none"},
                "total_duration_seconds": {"type": "number"},
                "approval": {"type": "object", "description": "the approval the run waits for"},
                "attempts": {"type": "array", "items": {"type": "object"}}
            }
        }
    })
}

/// The whole document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "pallet orchestrator",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Start workflow runs, follow them, decide approvals. Errors are RFC 9457 problem documents. When the service has a token, every route but /health needs `Authorization: Bearer TOKEN`."
        },
        "paths": paths(),
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        },
        "security": [{"bearer": []}]
    })
}

/// (path, method) pairs the document describes, methods upper case.
pub fn operations(document: &Value) -> Vec<(String, String)> {
    let mut operations = Vec::new();
    if let Some(paths) = document["paths"].as_object() {
        for (path, item) in paths {
            for method in item.as_object().into_iter().flat_map(|item| item.keys()) {
                operations.push((path.clone(), method.to_uppercase()));
            }
        }
    }
    operations.sort();
    operations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_exactly_the_routes() {
        let mut routes: Vec<(String, String)> = crate::api::routes::routes()
            .into_iter()
            .map(|route| (route.path.to_string(), route.method.to_string()))
            .collect();
        routes.sort();
        assert_eq!(operations(&document()), routes);
    }

    #[test]
    fn every_reference_resolves() {
        let document = document();
        let text = document.to_string();
        for (index, _) in text.match_indices("#/components/schemas/") {
            let rest = &text[index + "#/components/schemas/".len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                document["components"]["schemas"].get(&name).is_some(),
                "{name}"
            );
        }
    }
}
