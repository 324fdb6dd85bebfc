// The web UI of `pallet serve`: plain DOM over the JSON API and its event
// streams. Every value from the server is put in with textContent, never as
// HTML, so an agent's output shows as the text it is.
"use strict";

const main = () => document.getElementById("main");

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// replaceChildren, leaving out the parts a page does not have (null).
function put(parent, ...nodes) {
  parent.replaceChildren(...nodes.filter((node) => node !== null && node !== undefined));
}

class Problem extends Error {
  constructor(status, body) {
    super(body && body.detail ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// A JSON API call; a missing or wrong token leads to the sign-in page.
async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401) {
    window.location.assign("/ui/login");
    throw new Problem(401, null);
  }
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch (_) { parsed = { detail: text }; }
  if (!response.ok) throw new Problem(response.status, parsed);
  return parsed;
}

function problemBox(error) {
  const box = el("div", { class: "card error", id: "problem" }, error.message);
  const problems = error.body && error.body.errors;
  if (Array.isArray(problems)) {
    box.append(el("ul", {}, problems.map((p) => el("li", {}, `${p.pointer || ""} ${p.message || JSON.stringify(p)}`))));
  }
  return box;
}

function statusBadge(status, id) {
  return el("span", { class: `status ${status}`, id }, status.replace("_", " "));
}

function seconds(from, to) {
  if (!from) return "";
  const end = to ? Date.parse(to) : Date.now();
  const value = (end - Date.parse(from)) / 1000;
  if (!isFinite(value) || value < 0) return "";
  return value < 10 ? `${value.toFixed(2)} s` : value < 120 ? `${value.toFixed(0)} s` : `${(value / 60).toFixed(1)} min`;
}

function when(at) {
  return at ? new Date(at).toLocaleString() : "";
}

// A collapsed JSON value with a copy button.
function jsonBlock(label, value, className) {
  const text = JSON.stringify(value, null, 2);
  const copy = el("button", { type: "button", class: "copy" }, "Copy");
  copy.addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(text));
  return el("details", { class: className }, el("summary", {}, label), copy, el("pre", {}, text));
}

// Live updates: `refresh` runs (at most every 250 ms) after each event.
function follow(path, refresh, onEnd) {
  const badge = document.getElementById("live");
  let timer = null;
  const source = new EventSource(path);
  source.onopen = () => { badge.textContent = "live"; badge.classList.add("on"); };
  source.onerror = () => { badge.textContent = "reconnecting"; badge.classList.remove("on"); };
  source.onmessage = () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; refresh(); }, 250);
  };
  source.addEventListener("end", () => {
    source.close();
    badge.textContent = "ended"; badge.classList.remove("on");
    refresh();
    if (onEnd) onEnd();
  });
  return source;
}

// Runs, newest first, filtered by status and workflow.
async function runsPage() {
  const params = new URLSearchParams(window.location.search);
  const status = el("select", { id: "status-filter" },
    ["", "pending", "in_progress", "waiting_approval", "completed", "failed", "cancelled"].map((s) =>
      el("option", { value: s, selected: params.get("status") === s }, s ? s.replace("_", " ") : "any status")));
  const workflow = el("input", { type: "text", id: "workflow-filter", placeholder: "workflow id", value: params.get("workflow") || "" });
  const body = el("tbody");
  const table = el("table", { id: "runs" },
    el("thead", {}, el("tr", {}, ["Run", "Workflow", "Status", "Step", "Started", "Duration"].map((h) => el("th", {}, h)))),
    body);
  put(main(), el("h1", {}, "Runs"),
    el("div", { class: "filters" }, el("label", {}, "Status ", status), el("label", {}, "Workflow ", workflow)),
    table);
  const load = async () => {
    const query = new URLSearchParams({ limit: "200" });
    if (status.value) query.set("status", status.value);
    if (workflow.value.trim()) query.set("workflow", workflow.value.trim());
    let page;
    try { page = await api("GET", `/workflows?${query}`); } catch (error) { main().append(problemBox(error)); return; }
    const rows = page.runs.map((run) =>
      el("tr", { "data-id": run.id },
        el("td", {}, el("a", { href: `/ui/runs/${encodeURIComponent(run.id)}` }, run.id.slice(0, 8))),
        el("td", {}, `${run.workflow_id}@${run.workflow_version}`),
        el("td", {}, statusBadge(run.status)),
        el("td", {}, run.current_step || ""),
        el("td", {}, when(run.created_at)),
        el("td", {}, seconds(run.created_at, run.completed_at))));
    body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No runs."))]));
  };
  const refilter = () => {
    const query = new URLSearchParams();
    if (status.value) query.set("status", status.value);
    if (workflow.value.trim()) query.set("workflow", workflow.value.trim());
    history.replaceState(null, "", `/ui${query.toString() ? "?" + query : ""}`);
    load();
  };
  status.addEventListener("change", refilter);
  workflow.addEventListener("change", refilter);
  await load();
  follow("/events", load);
}

// The latest attempt of each step, in the order the steps first ran.
function steps(attempts) {
  const byStep = new Map();
  for (const attempt of attempts) {
    const entry = byStep.get(attempt.step_id) || { tries: [] };
    entry.tries.push(attempt);
    byStep.set(attempt.step_id, entry);
  }
  return [...byStep.entries()].map(([id, entry]) => ({ id, tries: entry.tries, last: entry.tries[entry.tries.length - 1] }));
}

function approvalForm(run, reload) {
  const approval = run.approval;
  const fields = approval.required.map((name) =>
    el("label", {}, name, el("input", { type: "text", name, "data-field": name, required: true })));
  const comment = el("textarea", { id: "comment", placeholder: "comment (optional)" });
  const actor = el("input", { type: "text", id: "actor", value: localStorage.getItem("pallet-actor") || "", placeholder: "your name" });
  const message = el("div");
  const decide = async (trigger) => {
    const values = {};
    for (const input of fields.map((label) => label.querySelector("input"))) {
      if (input.value !== "") values[input.name] = input.value;
    }
    const name = actor.value.trim() || "ui";
    localStorage.setItem("pallet-actor", actor.value.trim());
    const body = { trigger, phase_result: { comment: comment.value, fields: values, actor: name } };
    try {
      await api("POST", `/workflows/${encodeURIComponent(run.id)}/advance`, body);
      message.replaceChildren();
      reload();
    } catch (error) {
      message.replaceChildren(problemBox(error));
    }
  };
  const approve = el("button", { type: "button", id: "approve" }, "Approve");
  const reject = el("button", { type: "button", id: "reject" }, "Reject / send back");
  approve.addEventListener("click", () => decide("human_approved"));
  reject.addEventListener("click", () => decide("human_rejected"));
  return el("section", { class: "card", id: "approval", "data-step": approval.step, "data-since": approval.waiting_since },
    el("h2", {}, approval.title || `Approve ${approval.step}?`),
    approval.instructions ? el("p", { class: "instructions" }, approval.instructions) : null,
    el("p", { class: "muted" }, `Step ${approval.step}, waiting since ${when(approval.waiting_since)}`,
      approval.deadline ? `, until ${when(approval.deadline)} (then ${approval.on_timeout})` : ""),
    fields, el("label", {}, "Comment", comment), el("label", {}, "Decided by", actor),
    approve, reject, message);
}

// The form already shown for the same approval: a redraw keeps what was typed.
function keptApproval(run) {
  const shown = document.getElementById("approval");
  return shown && shown.dataset.step === run.approval.step && shown.dataset.since === run.approval.waiting_since ? shown : null;
}

async function runPage(id) {
  const draw = async () => {
    let run, history;
    try {
      [run, history] = await Promise.all([
        api("GET", `/workflows/${encodeURIComponent(id)}`),
        api("GET", `/workflows/${encodeURIComponent(id)}/history`),
      ]);
    } catch (error) {
      put(main(), problemBox(error));
      return;
    }
    // Events that changed nothing shown (a stream's replay, the end) redraw
    // nothing: what a person selected, opened or typed stays.
    const shown = JSON.stringify([run.status, run.updated_at, run.attempts, run.approval, run.error, run.result, history.transitions.length]);
    if (shown === lastShown) return;
    lastShown = shown;
    const progress = run.progress || { percentage: 0, steps_completed: 0, steps_total: 0 };
    const summary = el("dl", {},
      el("dt", {}, "Workflow"), el("dd", {}, `${run.workflow_id}@${run.workflow_version}`),
      el("dt", {}, "Digest"), el("dd", {}, el("code", {}, run.workflow_digest)),
      el("dt", {}, "Source"), el("dd", {}, run.workflow_source),
      el("dt", {}, "Status"), el("dd", {}, statusBadge(run.status, "run-status")),
      el("dt", {}, "Progress"), el("dd", {},
        el("div", { class: "bar", title: `${progress.percentage} %` }, el("span", { style: null })),
        `${progress.steps_completed} of ${progress.steps_total} steps`),
      el("dt", {}, "Started"), el("dd", {}, when(run.created_at)),
      el("dt", {}, "Duration"), el("dd", {}, seconds(run.created_at, run.completed_at)));
    // Width through the DOM, not an inline style attribute: the CSP forbids those.
    summary.querySelector(".bar > span").style.width = `${progress.percentage}%`;
    // The workflow's steps in its order (nested ones indented under their
    // parent), each with its latest attempt; then attempts of steps the
    // outline does not name (those of sub-workflows, `PARENT/CHILD`).
    const tried = new Map(steps(run.attempts).map((step) => [step.id, step]));
    const outlined = (run.steps || []).map((step) => ({ ...step, attempts: tried.get(step.id) }));
    const named = new Set(outlined.map((step) => step.id));
    for (const [id, attempts] of tried) {
      if (!named.has(id)) outlined.push({ id, kind: "sub-workflow step", depth: id.split("/").length - 1, attempts });
    }
    const rows = outlined.map((step) => {
      const last = step.attempts ? step.attempts.last : null;
      const details = last ? el("div", { class: "step-details" },
        last.inputs !== undefined && last.inputs !== null ? jsonBlock("input", last.inputs, "step-input") : null,
        last.output !== undefined && last.output !== null ? jsonBlock("output", last.output, "step-output") : null,
        last.error ? el("div", { class: "error step-error" }, last.error) : null) : null;
      const name = el("td", { class: `depth-${Math.min(step.depth || 0, 6)}` }, step.id.split("/").pop(),
        step.branch ? el("span", { class: "muted" }, ` (${step.branch})`) : null);
      const kind = step.kind === "sequential" ? (step.skill ? `skill ${step.skill}` : "step") : String(step.kind).replace("_", " ");
      return el("tr", { "data-step": step.id },
        name,
        el("td", { class: "muted" }, kind),
        el("td", {}, last ? statusBadge(last.status) : el("span", { class: "muted" }, "not run")),
        el("td", {}, last ? String(step.attempts.tries.length) : ""),
        el("td", {}, last && last.agent ? last.agent : ""),
        el("td", {}, last ? seconds(last.started_at, last.ended_at || (last.status === "running" ? null : last.started_at)) : ""),
        el("td", {}, last && last.status_message ? el("div", { class: "muted" }, last.status_message) : null, details));
    });
    const transitions = history.transitions.map((t) =>
      el("tr", {}, el("td", {}, when(t.at)), el("td", {}, t.from || "—"), el("td", {}, t.to), el("td", {}, t.trigger), el("td", {}, t.actor)));
    put(main(), 
      el("h1", {}, "Run ", el("code", {}, run.id)),
      summary,
      run.error ? el("div", { class: "card error", id: "run-error" }, run.error) : null,
      run.approval ? keptApproval(run) || approvalForm(run, draw) : null,
      el("h2", {}, "Steps"),
      el("table", { id: "steps" },
        el("thead", {}, el("tr", {}, ["Step", "Kind", "Status", "Attempts", "Agent", "Duration", "Details"].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows)),
      run.result ? jsonBlock("Result", run.result, "run-result") : null,
      jsonBlock("Input", run.input, "run-input"),
      el("h2", {}, "History"),
      el("table", { id: "history" },
        el("thead", {}, el("tr", {}, ["At", "From", "To", "Trigger", "Actor"].map((h) => el("th", {}, h)))),
        el("tbody", {}, transitions)));
    // Details left open stay open across redraws.
    for (const open of openDetails) {
      const node = main().querySelector(open);
      if (node) node.open = true;
    }
  };
  let lastShown = null;
  const openDetails = new Set();
  main().addEventListener("toggle", (event) => {
    const row = event.target.closest("tr[data-step]");
    const key = row ? `tr[data-step="${CSS.escape(row.dataset.step)}"] details.${event.target.className}` : `details.${event.target.className}`;
    if (event.target.open) openDetails.add(key); else openDetails.delete(key);
  }, true);
  await draw();
  follow(`/workflows/${encodeURIComponent(id)}/events`, draw);
}

// A form control for one declared input, from its JSON Schema.
function inputControl(info) {
  const schema = info.schema || {};
  const id = `field-${info.name}`;
  const initial = info.default;
  if (Array.isArray(schema.enum)) {
    return el("select", { id, "data-input": info.name, "data-kind": "enum" },
      info.required ? null : el("option", { value: "" }, ""),
      schema.enum.map((value) => el("option", { value: JSON.stringify(value), selected: initial !== undefined && JSON.stringify(initial) === JSON.stringify(value) }, String(value))));
  }
  switch (schema.type) {
    case "string":
      return schema.maxLength !== undefined && schema.maxLength <= 200
        ? el("input", { type: "text", id, "data-input": info.name, "data-kind": "string", value: initial ?? "" })
        : el("textarea", { id, "data-input": info.name, "data-kind": "string" }, initial ?? "");
    case "integer":
    case "number":
      return el("input", { type: "number", id, "data-input": info.name, "data-kind": schema.type, step: schema.type === "integer" ? "1" : "any", value: initial ?? "" });
    case "boolean":
      return el("input", { type: "checkbox", id, "data-input": info.name, "data-kind": "boolean", checked: initial === true });
    default:
      return el("textarea", { id, "data-input": info.name, "data-kind": "json" }, initial === undefined ? "" : JSON.stringify(initial, null, 2));
  }
}

// The input object from the declared fields; throws with the field's name when one is not valid.
function fieldValues(container) {
  const input = {};
  for (const control of container.querySelectorAll("[data-input]")) {
    const name = control.dataset.input;
    const kind = control.dataset.kind;
    if (kind === "boolean") { input[name] = control.checked; continue; }
    if (control.value === "") continue;
    if (kind === "enum") input[name] = JSON.parse(control.value);
    else if (kind === "integer" || kind === "number") input[name] = Number(control.value);
    else if (kind === "json") {
      try { input[name] = JSON.parse(control.value); } catch (error) { throw new Error(`${name} is not JSON: ${error.message}`); }
    } else input[name] = control.value;
  }
  return input;
}

async function startPage() {
  const params = new URLSearchParams(window.location.search);
  const workflow = el("input", { type: "text", id: "workflow", list: "workflows", value: params.get("workflow") || "code-generation-v1", required: true });
  const known = el("datalist", { id: "workflows" });
  const about = el("p", { class: "muted", id: "definition" });
  const fields = el("div", { id: "input-fields" });
  const input = el("textarea", { id: "input" }, JSON.stringify({ requirements: "" }, null, 2));
  const asJson = el("label", { id: "input-json" }, "Input (JSON object)", input);
  const toggle = el("button", { type: "button", id: "edit-json" }, "Edit as JSON");
  const message = el("div");
  const start = el("button", { type: "submit", id: "start" }, "Start");
  let declared = false;
  const showFields = (on) => {
    declared = on;
    fields.hidden = !on;
    toggle.hidden = !on;
    asJson.hidden = on;
  };
  toggle.addEventListener("click", () => {
    try { input.value = JSON.stringify(fieldValues(fields), null, 2); } catch (_) { /* keep the text */ }
    showFields(false);
  });
  // The declared inputs of the workflow named, as a form; none: JSON.
  const describe = async () => {
    const reference = workflow.value.trim();
    if (!reference) return;
    let definition;
    try { definition = await api("GET", `/definitions?${new URLSearchParams({ workflow: reference })}`); } catch (error) {
      about.textContent = `Cannot load ${reference}: ${error.message}`;
      fields.replaceChildren();
      showFields(false);
      return;
    }
    about.textContent = `${definition.name} ${definition.version}: ${definition.steps} steps, from ${definition.source}` +
      (definition.description ? `. ${definition.description}` : "");
    if (!definition.inputs || definition.inputs.length === 0) {
      fields.replaceChildren();
      showFields(false);
      return;
    }
    put(fields, ...definition.inputs.map((info) => el("label", {},
      `${info.name}${info.required ? " *" : ""}`,
      info.description ? el("span", { class: "muted" }, ` (${info.description})`) : null,
      inputControl(info))));
    showFields(true);
  };
  workflow.addEventListener("change", describe);
  const form = el("form", { class: "card", id: "start-form" },
    el("label", {}, "Workflow (id, id@version or id@sha256:digest)", workflow, known),
    about, fields, toggle, asJson, start, message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let value;
    try {
      value = declared ? fieldValues(fields) : JSON.parse(input.value || "{}");
    } catch (error) {
      message.replaceChildren(el("div", { class: "card error", id: "problem" }, `The input is not valid: ${error.message}`));
      return;
    }
    start.disabled = true;
    try {
      const run = await api("POST", "/workflows", { workflow: workflow.value.trim(), input: value });
      window.location.assign(`/ui/runs/${encodeURIComponent(run.id)}`);
    } catch (error) {
      message.replaceChildren(problemBox(error));
    } finally {
      start.disabled = false;
    }
  });
  put(main(), el("h1", {}, "Start a run"), form);
  showFields(false);
  describe();
  // Workflows run recently, as suggestions.
  try {
    const page = await api("GET", "/workflows?limit=200");
    const ids = new Set(["code-generation-v1", ...page.runs.map((run) => run.workflow_id)]);
    known.replaceChildren(...[...ids].map((id) => el("option", { value: id })));
  } catch (_) { /* suggestions only */ }
}

// Workflows (versions, digests, annotations, YAML) and agent cards of the registry.
async function registryPage() {
  put(main(), el("h1", {}, "Registry"), el("p", { class: "muted" }, "Loading…"));
  let workflows, agents;
  try {
    [workflows, agents] = await Promise.all([api("GET", "/registry/workflows"), api("GET", "/registry/agents")]);
  } catch (error) {
    put(main(), el("h1", {}, "Registry"), problemBox(error));
    return;
  }
  const shown = el("div", { id: "version" });
  const show = async (name, tag) => {
    let version;
    try { version = await api("GET", `/registry/workflows/${encodeURIComponent(name)}/${encodeURIComponent(tag)}`); } catch (error) {
      shown.replaceChildren(problemBox(error));
      return;
    }
    const annotations = Object.entries(version.annotations || {}).flatMap(([key, value]) => [el("dt", {}, key), el("dd", {}, value)]);
    const start = el("a", { href: `/ui/start?workflow=${encodeURIComponent(`${name}@${version.digest}`)}` }, "Start a run of this version");
    put(shown, el("section", { class: "card" },
      el("h2", {}, `${name} ${version.version || version.tag || ""}`),
      el("dl", {}, el("dt", {}, "Reference"), el("dd", {}, el("code", {}, version.reference)),
        el("dt", {}, "Digest"), el("dd", {}, el("code", { id: "version-digest" }, version.digest)), annotations),
      el("p", {}, start),
      version.source !== null ? el("pre", { id: "version-source" }, version.source) : el("p", { class: "muted" }, "The artifact is not text.")));
  };
  const rows = workflows.workflows.map((listed) => {
    const name = listed.repository.replace(/^workflows\//, "");
    const versions = listed.versions.slice().reverse().map((version) => {
      const button = el("button", { type: "button", class: "version", "data-tag": version.tag }, version.version);
      button.addEventListener("click", () => show(name, version.tag));
      return button;
    });
    const latest = listed.versions[listed.versions.length - 1];
    return el("tr", { "data-repository": listed.repository },
      el("td", {}, name),
      el("td", {}, versions, listed.other_tags.map((tag) => {
        const button = el("button", { type: "button", class: "version", "data-tag": tag }, tag);
        button.addEventListener("click", () => show(name, tag));
        return button;
      })),
      el("td", {}, latest ? el("code", {}, latest.digest.slice(0, 19)) : ""),
      el("td", { class: "error" }, listed.unreadable.map((broken) => `${broken.tag}: ${broken.error}`).join("; ")));
  });
  const agentRows = agents.agents.map((agent) => el("tr", { "data-repository": agent.repository },
    el("td", {}, agent.name || agent.repository),
    el("td", {}, (agent.versions[agent.versions.length - 1] || {}).version || agent.other_tags.join(", ")),
    el("td", {}, agent.url || ""),
    el("td", {}, (agent.skills || []).map((skill) => skill.id).join(", ")),
    el("td", {}, (agent.interfaces || []).map((i) => `A2A ${i.version} ${i.binding}`).join(", "))));
  put(main(),
    el("h1", {}, "Registry ", el("code", {}, workflows.registry)),
    el("h2", {}, "Workflows"),
    el("table", { id: "registry-workflows" },
      el("thead", {}, el("tr", {}, ["Workflow", "Versions", "Latest digest", "Problems"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No workflows.")))),
    shown,
    el("h2", {}, "Agents"),
    el("table", { id: "registry-agents" },
      el("thead", {}, el("tr", {}, ["Agent", "Version", "URL", "Skills", "Protocols"].map((h) => el("th", {}, h)))),
      el("tbody", {}, agentRows.length ? agentRows : el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No agent cards.")))));
}

window.addEventListener("DOMContentLoaded", () => {
  const path = window.location.pathname;
  const run = path.match(/^\/ui\/runs\/([^/]+)$/);
  if (run) runPage(decodeURIComponent(run[1]));
  else if (path === "/ui/start") startPage();
  else if (path === "/ui/registry") registryPage();
  else runsPage();
});
