//! The floor: a minimal loop making the same HTTP requests as a run (the card,
//! then each step's calls) with one pooled reqwest client, parsing each reply
//! as JSON. What pallet adds on top of this is its overhead.

use futures::future::join_all;
use serde_json::{Value, json};

use crate::agent::Protocol;

pub struct Floor {
    http: reqwest::Client,
    /// The JSON-RPC endpoint: `/a2a/rpc` or `/legacy/execute`.
    endpoint: String,
    card_url: String,
    protocol: Protocol,
}

impl Floor {
    pub fn new(base: &str, card_url: String, protocol: Protocol) -> Floor {
        let endpoint = match protocol {
            Protocol::A2a => format!("{base}/a2a/rpc"),
            Protocol::Legacy => format!("{base}/legacy/execute"),
        };
        Floor {
            http: reqwest::Client::new(),
            endpoint,
            card_url,
            protocol,
        }
    }

    /// `steps` calls in a row, each sending the previous output; returns the last.
    pub async fn sequential(&self, steps: usize, seed: &str) -> Value {
        self.card().await;
        let mut value = json!({"value": seed});
        for _ in 0..steps {
            value = self.call(&value).await;
        }
        value
    }

    /// `branches` calls at once; returns every output in order.
    pub async fn parallel(&self, branches: usize, seed: &str) -> Vec<Value> {
        self.card().await;
        let calls = (0..branches).map(|branch| async move {
            self.call(&json!({"value": seed, "branch": branch})).await
        });
        join_all(calls).await
    }

    async fn card(&self) {
        let card: Value = self.get_json(&self.card_url).await;
        assert!(card["name"].is_string(), "floor: agent card without a name");
    }

    async fn call(&self, input: &Value) -> Value {
        match self.protocol {
            Protocol::A2a => {
                let message = json!({
                    "messageId": uuid::Uuid::new_v4().to_string(),
                    "role": "ROLE_USER",
                    "parts": [{"data": input, "mediaType": "application/json"}],
                    "metadata": {"skillId": "echo"},
                });
                let sent = self
                    .rpc("SendMessage", json!({"message": message, "configuration": {"returnImmediately": true, "historyLength": 0}, "metadata": {"skillId": "echo"}}))
                    .await;
                let task_id = sent["task"]["id"].as_str().expect("floor: task id");
                let task = self
                    .rpc("GetTask", json!({"id": task_id, "historyLength": 0}))
                    .await;
                assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED");
                task["artifacts"][0]["parts"][0]["data"].clone()
            }
            Protocol::Legacy => self.rpc("echo", input.clone()).await,
        }
    }

    async fn rpc(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let reply: Value = self
            .http
            .post(&self.endpoint)
            .header("A2A-Version", "1.0")
            .json(&body)
            .send()
            .await
            .expect("floor: request")
            .json()
            .await
            .expect("floor: JSON reply");
        match reply.get("result") {
            Some(result) => result.clone(),
            None => panic!("floor: {method} failed: {reply}"),
        }
    }

    async fn get_json(&self, url: &str) -> Value {
        self.http
            .get(url)
            .send()
            .await
            .expect("floor: card request")
            .json()
            .await
            .expect("floor: card JSON")
    }
}
