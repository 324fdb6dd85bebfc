//! Agents that answer too much, redirect elsewhere, carry credentials in their
//! URLs or name unknown task states; each a real server on a loopback port.

use std::io::Write;
use std::process::Output;
use std::time::Duration;

use pallet::agent::{AgentClient, CallError, CallRequest, StaticDiscovery};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::support::TestContext;
use crate::support::hostile_agent::{Answer, HostileAgent};

const MIB: usize = 1024 * 1024;

async fn call_big(url: &str, max_response_size: Option<u64>) -> Result<Value, CallError> {
    call_with(
        StaticDiscovery::new(vec![url.to_string()]),
        max_response_size,
    )
    .await
}

async fn call_with(
    discovery: StaticDiscovery,
    max_response_size: Option<u64>,
) -> Result<Value, CallError> {
    let cards = discovery.cards().await;
    let card = cards.first().expect("the hostile agent's card is read");
    let cancel = CancellationToken::new();
    let input = Map::new();
    let request = CallRequest {
        skill: "big",
        input: &input,
        timeout: Duration::from_secs(30),
        cancel: &cancel,
        idempotency_key: "hostile-key",
        max_response_size,
        on_task: None,
        on_status: None,
        traceparent: None,
    };
    AgentClient::new().call(card, request).await
}

#[tokio::test]
async fn answers_over_the_default_limit_fail_announced_or_streamed() {
    for (agent, announced) in [
        (
            HostileAgent::a2a(Answer::HugeString {
                bytes: 20 * MIB,
                streamed: false,
            })
            .await,
            true,
        ),
        (
            HostileAgent::a2a(Answer::HugeString {
                bytes: 20 * MIB,
                streamed: true,
            })
            .await,
            false,
        ),
        (
            HostileAgent::legacy(Answer::HugeString {
                bytes: 20 * MIB,
                streamed: true,
            })
            .await,
            false,
        ),
    ] {
        let error = call_big(&agent.url(), None).await.unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(&error, CallError::TooLarge { limit, size, .. }
                if *limit == 16 * MIB as u64 && size.is_some() == announced),
            "{error:?}"
        );
        assert!(message.contains("agent `hostile`"), "{message}");
        assert!(message.contains("the limit is 16 MiB"), "{message}");
        assert!(
            message.contains("`max_response_size` on the step or on the agent"),
            "{message}"
        );
        assert!(!error.is_transient(), "a retry would read it again");
    }
}

#[tokio::test]
async fn the_limit_is_set_per_step_and_per_agent() {
    let agent = HostileAgent::a2a(Answer::HugeString {
        bytes: 2 * MIB,
        streamed: true,
    })
    .await;
    assert!(call_big(&agent.url(), None).await.is_ok());
    let error = call_big(&agent.url(), Some(MIB as u64)).await.unwrap_err();
    assert!(error.to_string().contains("the limit is 1 MiB"), "{error}");

    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "agents:\n  - {{url: '{}', max_response_size: 1MiB}}",
        agent.url()
    )
    .unwrap();
    let limited = StaticDiscovery::with_agents_file(vec![], file.path()).unwrap();
    let error = call_with(limited, None).await.unwrap_err();
    assert!(error.to_string().contains("the limit is 1 MiB"), "{error}");
    // The step's limit wins over the agent's.
    let limited = StaticDiscovery::with_agents_file(vec![], file.path()).unwrap();
    assert!(call_with(limited, Some(4 * MIB as u64)).await.is_ok());
}

#[tokio::test]
async fn many_small_objects_are_refused_before_they_are_parsed() {
    for agent in [
        HostileAgent::a2a(Answer::ManyObjects { bytes: 8_000_000 }).await,
        HostileAgent::legacy(Answer::ManyObjects { bytes: 8_000_000 }).await,
    ] {
        let error = call_big(&agent.url(), None).await.unwrap_err();
        assert!(
            matches!(error, CallError::TooManyValues { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("the limit is 262144"), "{message}");
        assert!(message.contains("raise `max_response_size`"), "{message}");
    }
}

#[tokio::test]
async fn an_unknown_task_state_fails_the_call_and_cancels_the_task() {
    let agent = HostileAgent::a2a(Answer::UnknownState).await;
    let error = call_big(&agent.url(), None).await.unwrap_err();
    assert!(
        error.to_string().contains(
            "unknown task state `TASK_STATE_EXPLODED` (task t-1, cancellation sent to the agent)"
        ),
        "{error}"
    );
    assert_eq!(agent.rpc_calls("CancelTask"), 1, "{:?}", agent.received());
}

#[tokio::test]
async fn redirects_to_another_origin_or_that_change_the_method_are_not_followed() {
    let elsewhere = HostileAgent::a2a(Answer::Small).await;
    let target = format!("{}/rpc-elsewhere", elsewhere.url());
    for (status, legacy) in [(302, false), (307, false), (308, true), (301, true)] {
        let answer = Answer::Redirect {
            status,
            location: target.clone(),
        };
        let agent = if legacy {
            HostileAgent::legacy(answer).await
        } else {
            HostileAgent::a2a(answer).await
        };
        let error = call_big(&agent.url(), None).await.unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, CallError::Redirected { .. }),
            "{status}: {error:?}"
        );
        assert!(
            message.contains("agent `hostile`") && message.contains(&target),
            "{message}"
        );
        assert!(message.contains("another origin"), "{message}");
    }
    let posts = elsewhere
        .received()
        .into_iter()
        .filter(|request| request.method == "POST")
        .count();
    assert_eq!(posts, 0, "the other origin received the step's input");

    // Same origin: a 307 keeps the method and body and is followed, a 302 is not.
    let moved = HostileAgent::a2a(Answer::Redirect {
        status: 307,
        location: "/moved".into(),
    })
    .await;
    assert!(call_big(&moved.url(), None).await.is_ok());
    let followed = moved
        .received()
        .into_iter()
        .find(|request| request.path == "/moved")
        .unwrap();
    assert_eq!(followed.method, "POST");
    assert!(followed.body.contains("hostile-key"), "{}", followed.body);
    let moved = HostileAgent::a2a(Answer::Redirect {
        status: 302,
        location: "/moved".into(),
    })
    .await;
    let error = call_big(&moved.url(), None).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("only a 307 or 308 keeps the request"),
        "{error}"
    );
}

#[tokio::test]
async fn card_fetches_follow_redirects_of_any_kind_to_another_origin_without_credentials() {
    let agent = HostileAgent::a2a(Answer::Small).await;
    let card = format!("{}/.well-known/agent-card.json", agent.url());
    for status in [301, 302, 303, 307, 308] {
        let front = HostileAgent::a2a(Answer::Small).await;
        front.redirect_cards(status, &card);
        // Credentials a URL gives go to its own origin only.
        let with_credentials = front.url().replace("http://", "http://user:hunter2@");
        let discovery = StaticDiscovery::new(vec![with_credentials]);
        let cards = discovery.cards().await;
        let searched = pallet::agent::Discovery::searched(&discovery);
        assert_eq!(cards.len(), 1, "{status}: {searched}");
        assert_eq!(cards[0].url(), format!("{}/rpc", agent.url()), "{status}");
        assert!(
            front.received()[0].authorization.is_some(),
            "{status}: the front was sent no credentials"
        );
        // The card's agent is called at its own URL, by POST.
        assert!(call_with(discovery, None).await.is_ok(), "{status}");
    }
    let received = agent.received();
    assert!(
        received
            .iter()
            .all(|request| request.authorization.is_none()),
        "{received:?}"
    );
    assert_eq!(agent.rpc_calls("SendMessage"), 5, "{received:?}");

    // A redirect loop ends after 5 redirects: no card, nothing called.
    let looping = HostileAgent::a2a(Answer::Small).await;
    looping.redirect_cards(301, &format!("{}/again", looping.url()));
    let discovery = StaticDiscovery::new(vec![looping.url()]);
    assert!(discovery.cards().await.is_empty());
    let searched = pallet::agent::Discovery::searched(&discovery);
    assert!(searched.contains("no usable agent card"), "{searched}");
    // Both card locations: the first request and 5 redirects each.
    assert_eq!(looping.received().len(), 12, "{:?}", looping.received());
}

#[tokio::test]
async fn credentials_in_a_card_interface_url_are_refused_and_never_sent() {
    let agent =
        HostileAgent::a2a_with_interface(Answer::Small, "http://user:hunter2@{base}/rpc").await;
    let discovery = StaticDiscovery::new(vec![agent.url()]);
    assert!(discovery.cards().await.is_empty());
    let searched = pallet::agent::Discovery::searched(&discovery);
    assert!(
        searched.contains("refused") && searched.contains("user name or password"),
        "{searched}"
    );
    assert!(!searched.contains("hunter2"), "{searched}");
    assert!(
        agent
            .received()
            .iter()
            .all(|request| request.method == "GET" && request.authorization.is_none())
    );
}

/// `pallet run ARGS` in `home`, with every home and XDG directory in it.
fn run(home: &TestContext, arguments: &[&str]) -> Output {
    home.pallet().arg("run").args(arguments).output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn pallet_run_fails_the_step_naming_its_limit_and_survives() {
    let agent = HostileAgent::a2a(Answer::HugeString {
        bytes: 4096,
        streamed: false,
    })
    .await;
    let home = TestContext::new();
    home.write("big.yaml", "metadata: {id: big, name: Big, version: 1.0.0}\nsteps:\n  - {id: fetch, skill: big, max_response_size: 1KiB}\n");
    let (path, url) = (home.clone(), agent.url());
    let output = tokio::task::spawn_blocking(move || {
        run(
            &path,
            &[
                "--file",
                "big.yaml",
                "--agent",
                &url,
                "--offline",
                "--out",
                "out",
            ],
        )
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("out/run.json")).unwrap()).unwrap();
    let error = record["steps"][0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("step `fetch` failed: agent `hostile`"),
        "{error}"
    );
    assert!(error.contains("the limit is 1 KiB"), "{error}");
}

#[test]
fn pallet_run_refuses_an_agent_url_with_credentials() {
    let home = TestContext::new();
    home.write(
        "one.yaml",
        "metadata: {id: one, name: One, version: 1.0.0}\nsteps:\n  - {id: fetch, skill: big}\n",
    );
    let output = run(
        &home,
        &[
            "--file",
            "one.yaml",
            "--agent",
            "http://user:hunter2@127.0.0.1:9/",
            "--offline",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("carries a user name or password"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: remove `user:password@`"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
