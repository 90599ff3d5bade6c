//! Confluent's own Python client (`confluent-kafka[avro,schemaregistry]`,
//! installed by `make install`) against the registry: its `SchemaRegistryClient`
//! and Avro serdes send requests our Rust clients do not, e.g. boolean query
//! parameters spelt `True`/`False`.

use paystream_testkit::TestRegistry;
use tokio::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/confluent_client.py");

#[tokio::test]
async fn confluents_python_client_registers_looks_up_checks_and_round_trips() {
    let registry = TestRegistry::start().await;
    // tokio's Command, so the in-process registry keeps serving while we wait.
    let output = Command::new("python3")
        .arg(SCRIPT)
        .arg(&registry.url)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|error| {
            panic!("cannot run python3 {SCRIPT} (`make install` installs it): {error}")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{SCRIPT} exited with {} (`make install` installs confluent-kafka)\n\
         --- stdout\n{stdout}--- stderr\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all steps passed"), "{stdout}");
}
