// Calls `pallet agent serve` with the official JavaScript A2A clients and
// prints one JSON report for pallet's integration tests.
//
// Usage: node serve_client.mjs BASE_URL --sdk=1|0.3
//
// --sdk=1   @a2a-js/sdk 1.3.0 ClientFactory, once per binding (JSONRPC,
//           HTTP+JSON): {BINDING: {transport, text, data, listed, streamed, canceled}}
// --sdk=0.3 @a2a-js/sdk 0.3.14 A2AClient (JSON-RPC): {text, streamed, canceled}
//
// text: a text part that is not JSON (skill `echo`); data: a data part;
// listed: how many tasks ListTasks returned; streamed: the kinds of the
// stream's events then the final state; canceled: the state after canceling
// a task of skill `slow`.

import { randomUUID } from "node:crypto";

const [base] = process.argv.slice(2);
const sdk = process.argv.find((arg) => arg.startsWith("--sdk="))?.slice(6) ?? "1";

const outputOf = (artifacts) => {
  const part = artifacts?.[0]?.parts?.[0];
  if (!part) return null;
  if (part.data !== undefined) return part.data;
  if (part.text !== undefined) return JSON.parse(part.text);
  return part;
};

async function version1() {
  const sdk1 = await import("@a2a-js/sdk");
  const client = await import("@a2a-js/sdk/client");
  const { ClientFactory, ClientFactoryOptions } = client;
  const { SendMessageRequest, StreamResponse, ListTasksRequest } = sdk1;
  // The SDK's objects are protobuf-shaped; its StreamResponse codec gives their JSON.
  const taskJson = (task) => StreamResponse.toJSON({ payload: { $case: "task", value: task } }).task;
  const request = (skill, part, configuration = {}) =>
    SendMessageRequest.fromJSON({
      message: {
        messageId: randomUUID(),
        role: "ROLE_USER",
        parts: [part],
        metadata: { skillId: skill },
      },
      configuration,
      metadata: { skillId: skill },
    });
  const report = {};
  for (const binding of ["JSONRPC", "HTTP+JSON"]) {
    const options = ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      preferredTransports: [binding],
    });
    const agent = await new ClientFactory(options).createFromUrl(base);
    // The transport the factory chose for the preferred binding.
    const run = { transport: agent.transport?.constructor?.name };
    const text = taskJson(await agent.sendMessage(request("echo", { text: "hello agent" })));
    run.text = { state: text.status?.state, output: outputOf(text.artifacts) };
    const data = taskJson(await agent.sendMessage(request("echo", { data: { n: 7 } })));
    run.data = { state: data.status?.state, output: outputOf(data.artifacts) };
    const listed = await agent.listTasks(ListTasksRequest.fromJSON({ pageSize: 10 }));
    run.listed = listed.tasks.length;
    run.streamed = [];
    let last;
    for await (const event of agent.sendMessageStream(request("echo", { data: { s: 1 } }))) {
      const json = StreamResponse.toJSON(event);
      const kind = Object.keys(json)[0];
      run.streamed.push(kind);
      if (kind === "statusUpdate") last = json.statusUpdate.status.state;
    }
    run.streamed.push(last);
    const slow = taskJson(
      await agent.sendMessage(request("slow", { data: {} }, { returnImmediately: true })),
    );
    const canceled = taskJson(await agent.cancelTask({ id: slow.id, tenant: "", metadata: undefined }));
    run.canceled = canceled.status?.state;
    report[binding] = run;
  }
  return report;
}

async function version03() {
  const { A2AClient } = await import("a2a-js-sdk-03/client");
  const agent = await A2AClient.fromCardUrl(`${base}/.well-known/agent-card.json`);
  const params = (skill, part, configuration) => ({
    message: {
      kind: "message",
      messageId: randomUUID(),
      role: "user",
      parts: [part],
      metadata: { skillId: skill },
    },
    ...(configuration ? { configuration } : {}),
  });
  const report = {};
  const sent = await agent.sendMessage(params("echo", { kind: "text", text: "hello agent" }));
  if (sent.error) throw new Error(JSON.stringify(sent.error));
  report.text = { state: sent.result.status.state, output: outputOf(sent.result.artifacts) };
  report.streamed = [];
  let last;
  for await (const event of agent.sendMessageStream(params("echo", { kind: "data", data: { s: 1 } }))) {
    report.streamed.push(event.kind);
    if (event.kind === "status-update") last = event.status.state;
  }
  report.streamed.push(last);
  const slow = await agent.sendMessage(params("slow", { kind: "data", data: {} }, { blocking: false }));
  if (slow.error) throw new Error(JSON.stringify(slow.error));
  const canceled = await agent.cancelTask({ id: slow.result.id });
  if (canceled.error) throw new Error(JSON.stringify(canceled.error));
  report.canceled = canceled.result.status.state;
  return report;
}

const report = sdk === "0.3" ? await version03() : await version1();
console.log(JSON.stringify(report));
