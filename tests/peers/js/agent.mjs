// A real A2A agent for pallet's integration tests, built on the official
// JavaScript SDK: @a2a-js/sdk 1.3.0 (A2A 1.0) or 0.3.14 (A2A 0.3).
//
// Usage: node agent.mjs PORT NAME --sdk=1|0.3 --interfaces=B[,B...] [--skills=a,b]
//                       [--api-key=HEADER:KEY] [--basic=USER:PASSWORD]
//
// Each B is a binding, JSONRPC, HTTP+JSON or GRPC, optionally `=URL`; the card
// lists them in that order (for 0.3: the first is `url` + `preferredTransport`,
// the others `additionalInterfaces`). JSON-RPC is served at /rpc, HTTP+JSON at
// /rest; GRPC is only named, never served. The agent exits when its standard
// input closes, so a test process that dies leaves no agent behind.
//
// Skills (the skill id comes from the message's `metadata.skillId`):
//   echo       artifact with the input as one data part
//   echo_text  artifact with one text part holding the input as JSON
//   words      artifact with one text part that is not JSON
//   reply      an immediate message (no task) with the input as a data part
//   fail       task failed with a status message
//   slow       works for `seconds` (default 60); stops at once when cancelled
//   metadata   artifact with the message's metadata
//   chatty     sends `count` (default 3) working status updates with the
//              messages "step N of COUNT", `delay_ms` (default 200) apart, then
//              completes like `echo`
// plus the skills named with --skills, which behave like `echo`.
//
// With --api-key (A2A 1.0 only), the card declares an API key in header HEADER
// (`securitySchemes` + `securityRequirements`) and the JSON-RPC and HTTP+JSON
// endpoints answer 401 to a request without that header set to KEY; the card
// stays public. --basic does the same with HTTP basic (`Authorization: Basic`).
// With --record-sends the agent keeps every message it is sent (SendMessage /
// message/send) as {skill, idempotencyKey} and lists them at GET /test/sends,
// so a test can count what a client sent.
// --streaming declares `capabilities.streaming: true`; --drop-streams=N closes
// the connection of the first N event streams right after their first event
// (the task goes on), so a client has to subscribe to the task again;
// GET /test/streams answers {opened: N}, the event streams opened so far.

import express from "express";

const [port, name] = process.argv.slice(2);
const option = (key, fallback) =>
  process.argv.find((arg) => arg.startsWith(`--${key}=`))?.slice(key.length + 3) ?? fallback;
const sdkVersion = option("sdk", "1");
const base = `http://127.0.0.1:${port}`;
const paths = { JSONRPC: "/rpc", "HTTP+JSON": "/rest", GRPC: "/grpc" };
const interfaces = option("interfaces", "JSONRPC")
  .split(",")
  .map((entry) => {
    const [binding, url] = entry.split("=");
    return { binding, url: url ?? `${base}${paths[binding] ?? "/"}` };
  });
const extraSkills = option("skills", "").split(",").filter(Boolean);
const [apiKeyHeader, apiKey] = option("api-key", ":").split(/:(.*)/s);
const [basicUser, basicPassword] = option("basic", ":").split(/:(.*)/s);
const skills = ["echo", "echo_text", "words", "reply", "fail", "slow", "metadata", "chatty", ...extraSkills];
const streaming = process.argv.includes("--streaming");
let dropsLeft = Number(option("drop-streams", "0"));

process.stdin.on("end", () => process.exit(0));
process.stdin.resume();

/// What every skill does, whatever the SDK: returns {data} | {text} | {fail} | {message}.
async function runSkill(skill, input, metadata, cancelled, progress) {
  switch (skill) {
    case "chatty": {
      const count = input?.count ?? 3;
      for (let step = 1; step <= count && !cancelled(); step += 1) {
        await new Promise((resolve) => setTimeout(resolve, input?.delay_ms ?? 200));
        progress(`step ${step} of ${count}`);
      }
      return cancelled() ? { cancelled: true } : { data: input };
    }
    case "echo":
      return { data: input };
    case "echo_text":
      return { text: JSON.stringify(input) };
    case "words":
      return { text: "plain words, not JSON" };
    case "reply":
      return { message: input };
    case "fail":
      return { fail: "the skill failed on purpose" };
    case "slow": {
      const until = Date.now() + 1000 * (input?.seconds ?? 60);
      while (Date.now() < until && !cancelled()) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return cancelled() ? { cancelled: true } : { data: input };
    }
    case "metadata":
      return { data: metadata ?? {} };
    default:
      return extraSkills.includes(skill) ? { data: input } : { fail: `unknown skill ${skill}` };
  }
}

const cancelledTasks = new Set();
const recordSends = process.argv.includes("--record-sends");
const sends = [];
const recordSend = (skill, metadata) => {
  if (recordSends) sends.push({ skill, idempotencyKey: metadata?.idempotencyKey ?? null });
};

async function version1() {
  const sdk = await import("@a2a-js/sdk");
  const server = await import("@a2a-js/sdk/server");
  const expressSdk = await import("@a2a-js/sdk/server/express");
  const { TaskState, Role } = sdk;
  const { AgentEvent } = server;
  const data = (value) => ({ content: { $case: "data", value }, metadata: undefined, filename: "", mediaType: "application/json" });
  const text = (value) => ({ content: { $case: "text", value }, metadata: undefined, filename: "", mediaType: "text/plain" });
  const message = (taskId, contextId, parts) => ({
    messageId: `m-${Math.random()}`, contextId, taskId, role: Role.ROLE_AGENT, parts,
    metadata: undefined, extensions: [], referenceTaskIds: [],
  });
  const status = (taskId, contextId, state, words) =>
    AgentEvent.statusUpdate({
      taskId, contextId, metadata: undefined,
      status: { state, message: words ? message(taskId, contextId, [text(words)]) : undefined, timestamp: new Date().toISOString() },
    });
  const executor = {
    async execute(context, bus) {
      const user = context.userMessage;
      const skill = user.metadata?.skillId ?? context.request.metadata?.skillId;
      const input = user.parts.find((part) => part.content?.$case === "data")?.content.value ?? {};
      const { taskId, contextId } = context;
      recordSend(skill, user.metadata);
      if (skill === "reply") {
        bus.publish(AgentEvent.message(message("", contextId, [data(input)])));
        bus.finished();
        return;
      }
      bus.publish(AgentEvent.task({
        id: taskId, contextId, artifacts: [], history: [], metadata: undefined,
        status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: undefined },
      }));
      bus.publish(status(taskId, contextId, TaskState.TASK_STATE_WORKING));
      const progress = (words) => bus.publish(status(taskId, contextId, TaskState.TASK_STATE_WORKING, words));
      const outcome = await runSkill(skill, input, user.metadata, () => cancelledTasks.has(taskId), progress);
      if (outcome.cancelled) {
        bus.finished();
        return;
      }
      if (outcome.fail) {
        bus.publish(status(taskId, contextId, TaskState.TASK_STATE_FAILED, outcome.fail));
      } else {
        const part = outcome.text !== undefined ? text(outcome.text) : data(outcome.data);
        bus.publish(AgentEvent.artifactUpdate({
          taskId, contextId, append: false, lastChunk: true, metadata: undefined,
          artifact: { artifactId: "result", name: "result", description: "", parts: [part], metadata: undefined, extensions: [] },
        }));
        bus.publish(status(taskId, contextId, TaskState.TASK_STATE_COMPLETED));
      }
      bus.finished();
    },
    async cancelTask(taskId, bus) {
      cancelledTasks.add(taskId);
      bus.publish(status(taskId, "", TaskState.TASK_STATE_CANCELED, "cancelled by the client"));
      bus.finished();
    },
  };
  const card = {
    name, description: "pallet test agent (@a2a-js/sdk 1.3.0)", version: "1.0.0",
    supportedInterfaces: interfaces.map(({ url, binding }) => ({ url, protocolBinding: binding, protocolVersion: "1.0", tenant: "" })),
    capabilities: { streaming, pushNotifications: false, extensions: [] },
    securitySchemes: {}, securityRequirements: [], signatures: [],
    defaultInputModes: ["application/json"], defaultOutputModes: ["application/json"],
    skills: skills.map((id) => ({ id, name: id, description: `test skill ${id}`, tags: ["test"], examples: [], inputModes: [], outputModes: [], securityRequirements: [] })),
  };
  if (apiKeyHeader) {
    card.securitySchemes = { apiKey: { apiKeySecurityScheme: { description: "test key", location: "header", name: apiKeyHeader } } };
    card.securityRequirements = [{ schemes: { apiKey: { list: [] } } }];
  }
  if (basicUser) {
    card.securitySchemes = { basic: { httpAuthSecurityScheme: { description: "test user", scheme: "Basic", bearerFormat: "" } } };
    card.securityRequirements = [{ schemes: { basic: { list: [] } } }];
  }
  const handler = new server.DefaultRequestHandler(card, new server.InMemoryTaskStore(), executor);
  const userBuilder = expressSdk.UserBuilder.noAuthentication;
  return { card, handler, expressSdk, userBuilder };
}

async function version03() {
  const server = await import("a2a-js-sdk-03/server");
  const expressSdk = await import("a2a-js-sdk-03/server/express");
  const status = (taskId, contextId, state, words, final = true) => ({
    kind: "status-update", taskId, contextId, final,
    status: {
      state, timestamp: new Date().toISOString(),
      message: words ? { kind: "message", messageId: `m-${Math.random()}`, role: "agent", parts: [{ kind: "text", text: words }], taskId, contextId } : undefined,
    },
  });
  const executor = {
    async execute(context, bus) {
      const user = context.userMessage;
      const skill = user.metadata?.skillId;
      const input = user.parts.find((part) => part.kind === "data")?.data ?? {};
      const { taskId, contextId } = context;
      recordSend(skill, user.metadata);
      if (skill === "reply") {
        bus.publish({ kind: "message", messageId: `m-${Math.random()}`, role: "agent", parts: [{ kind: "data", data: input }], contextId });
        bus.finished();
        return;
      }
      bus.publish({ kind: "task", id: taskId, contextId, status: { state: "submitted", timestamp: new Date().toISOString() }, history: [user] });
      bus.publish(status(taskId, contextId, "working", undefined, false));
      const progress = (words) => bus.publish(status(taskId, contextId, "working", words, false));
      const outcome = await runSkill(skill, input, user.metadata, () => cancelledTasks.has(taskId), progress);
      if (outcome.cancelled) {
        bus.finished();
        return;
      }
      if (outcome.fail) {
        bus.publish(status(taskId, contextId, "failed", outcome.fail));
      } else {
        const part = outcome.text !== undefined ? { kind: "text", text: outcome.text } : { kind: "data", data: outcome.data };
        bus.publish({ kind: "artifact-update", taskId, contextId, artifact: { artifactId: "result", parts: [part] } });
        bus.publish(status(taskId, contextId, "completed"));
      }
      bus.finished();
    },
    async cancelTask(taskId, bus) {
      cancelledTasks.add(taskId);
      bus.publish(status(taskId, "", "canceled", "cancelled by the client"));
      bus.finished();
    },
  };
  const [first, ...others] = interfaces;
  const card = {
    name, description: "pallet test agent (@a2a-js/sdk 0.3.14)", version: "1.0.0",
    protocolVersion: "0.3.0", url: first.url, preferredTransport: first.binding,
    additionalInterfaces: interfaces.map(({ url, binding }) => ({ url, transport: binding })),
    capabilities: { streaming, pushNotifications: false },
    defaultInputModes: ["application/json"], defaultOutputModes: ["application/json"],
    skills: skills.map((id) => ({ id, name: id, description: `test skill ${id}`, tags: ["test"] })),
  };
  if (others.length === 0) delete card.additionalInterfaces;
  const handler = new server.DefaultRequestHandler(card, new server.InMemoryTaskStore(), executor);
  const userBuilder = expressSdk.UserBuilder.noAuthentication;
  return { card, handler, expressSdk, userBuilder };
}

const { card, handler, expressSdk, userBuilder } = sdkVersion === "0.3" ? await version03() : await version1();
const app = express();
if (recordSends) app.get("/test/sends", (_request, response) => response.json(sends));
// --drop-streams: the first N event streams lose their connection after one
// event. GET /test/streams says how many event streams were opened.
let streamsOpened = 0;
app.get("/test/streams", (req, res) => res.json({ opened: streamsOpened }));
app.use((req, res, next) => {
  const write = res.write.bind(res);
  let counted = false;
  res.write = (chunk, ...rest) => {
    const type = String(res.getHeader("content-type") ?? "");
    if (!counted && type.includes("text/event-stream")) {
      counted = true;
      streamsOpened += 1;
    }
    if (dropsLeft > 0 && type.includes("text/event-stream") && String(chunk).includes("data:")) {
      dropsLeft -= 1;
      res.write = () => true;
      const written = write(chunk, ...rest);
      setTimeout(() => res.socket?.destroy(), 50);
      return written;
    }
    return write(chunk, ...rest);
  };
  next();
});
app.use("/.well-known/agent-card.json", expressSdk.agentCardHandler({ agentCardProvider: async () => card }));
const expected = apiKeyHeader
  ? [apiKeyHeader, apiKey]
  : basicUser
    ? ["Authorization", `Basic ${Buffer.from(`${basicUser}:${basicPassword}`).toString("base64")}`]
    : undefined;
if (expected) {
  const [header, value] = expected;
  const check = (req, res, next) => {
    if (req.get(header) === value) return next();
    if (basicUser) res.set("WWW-Authenticate", 'Basic realm="test"');
    res.status(401).json({ error: `missing or wrong ${header}` });
  };
  app.use(paths.JSONRPC, check);
  app.use(paths["HTTP+JSON"], check);
}
// Only the bindings the card lists are served.
const listed = new Set(interfaces.map(({ binding }) => binding));
if (listed.has("JSONRPC")) app.use(paths.JSONRPC, expressSdk.jsonRpcHandler({ requestHandler: handler, userBuilder }));
if (listed.has("HTTP+JSON")) app.use(paths["HTTP+JSON"], expressSdk.restHandler({ requestHandler: handler, userBuilder }));
app.listen(Number(port), "127.0.0.1");
