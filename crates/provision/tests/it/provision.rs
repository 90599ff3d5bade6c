//! Provisioning against the real broker and a real registry, run twice to show
//! it is idempotent.

use paystream_contract::Topic;
use paystream_provision::{Config, TopicOutcome, create_topics, register_schemas};
use paystream_testkit::TestRegistry;
use paystream_testkit::kafka::bootstrap;

fn config(registry: &str) -> Config {
    Config {
        kafka_bootstrap: bootstrap(),
        schema_registry_url: registry.to_owned(),
        partitions: 3,
        replication: 1,
        timeout_secs: 30,
    }
}

#[tokio::test]
async fn every_contract_topic_exists_after_provisioning_and_a_rerun_changes_nothing() {
    let config = config("http://127.0.0.1:1");
    create_topics(&config).await.unwrap();
    let rerun = create_topics(&config).await.unwrap();
    assert_eq!(rerun.len(), Topic::ALL.len());
    assert!(
        rerun
            .iter()
            .all(|(_, outcome)| *outcome == TopicOutcome::AlreadyThere),
        "{rerun:?}"
    );
}

#[tokio::test]
async fn schemas_are_registered_under_full_transitive_with_stable_ids() {
    let registry = TestRegistry::start_own().await;
    let config = config(&registry.url);
    let first = register_schemas(&config).await.unwrap();
    let subjects: Vec<&str> = first.iter().map(|(subject, _)| subject.as_str()).collect();
    let expected: Vec<String> = Topic::ALL
        .iter()
        .map(|topic| topic.value_subject())
        .collect();
    assert_eq!(subjects, expected);
    assert_eq!(
        register_schemas(&config).await.unwrap(),
        first,
        "re-registering keeps every id"
    );

    let level: serde_json::Value = reqwest::get(format!("{}/config", registry.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(level["compatibilityLevel"], "FULL_TRANSITIVE");
}
