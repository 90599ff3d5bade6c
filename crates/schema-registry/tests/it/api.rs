//! The registry's REST API as clients see it. Written only against HTTP, with
//! a subject per test, so that it also passes against Confluent's registry:
//! `PAYSTREAM_TEST_SCHEMA_REGISTRY_URL=http://host:8081 cargo test -p paystream-schema-registry`.

use paystream_testkit::{TestRegistry, unique};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Api {
    base: String,
    http: reqwest::Client,
    _registry: TestRegistry,
}

impl Api {
    async fn start() -> Self {
        let registry = TestRegistry::start().await;
        Self {
            base: registry.url.clone(),
            http: reqwest::Client::new(),
            _registry: registry,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/vnd.schemaregistry.v1+json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    async fn register(&self, subject: &str, schema: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": schema }),
        )
        .await
    }

    async fn register_ok(&self, subject: &str, schema: &str) -> i64 {
        let (status, body) = self.register(subject, schema).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["id"].as_i64().unwrap()
    }

    async fn set_subject_level(&self, subject: &str, level: &str) {
        let (status, body) = self
            .put(
                &format!("/config/{subject}"),
                json!({ "compatibility": level }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["compatibility"], level);
    }
}

fn payment(extra_fields: &str) -> String {
    format!(
        r#"{{"type":"record","name":"Payment","namespace":"test.paystream","fields":[
            {{"name":"paymentId","type":"string"}},
            {{"name":"amountMinor","type":"long"}}{extra_fields}]}}"#
    )
}

fn error_code(body: &Value) -> i64 {
    body["error_code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no error_code in {body}"))
}

#[tokio::test]
async fn the_same_schema_gets_the_same_global_id_under_any_subject() {
    let api = Api::start().await;
    let (first, second) = (unique("payments-value"), unique("refunds-value"));
    let id = api.register_ok(&first, &payment("")).await;
    // Whitespace and key order do not make a different schema.
    let reformatted =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&payment("")).unwrap())
            .unwrap();
    assert_eq!(api.register_ok(&first, &reformatted).await, id);
    assert_eq!(api.register_ok(&second, &payment("")).await, id);

    let (status, versions) = api.get(&format!("/subjects/{first}/versions")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        versions,
        json!([1]),
        "re-registering must not add a version"
    );

    let (status, by_id) = api.get(&format!("/schemas/ids/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let stored: Value = serde_json::from_str(by_id["schema"].as_str().unwrap()).unwrap();
    assert_eq!(stored["name"], "Payment");

    let (_, usages) = api.get(&format!("/schemas/ids/{id}/versions")).await;
    let mut subjects: Vec<&str> = usages
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["subject"].as_str().unwrap())
        .collect();
    subjects.sort_unstable();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort_unstable();
    assert_eq!(subjects, expected);

    let (status, latest) = api.get(&format!("/subjects/{first}/versions/latest")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(latest["subject"], first);
    assert_eq!(latest["version"], 1);
    assert_eq!(latest["id"], id);

    let (status, found) = api
        .post(
            &format!("/subjects/{first}"),
            json!({ "schema": payment("") }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["id"], id);
    assert_eq!(found["version"], 1);
}

#[tokio::test]
async fn full_transitive_accepts_an_optional_field_and_refuses_breaking_changes() {
    let api = Api::start().await;
    let subject = unique("payment.submitted-value");
    api.set_subject_level(&subject, "FULL_TRANSITIVE").await;
    let v1 = api.register_ok(&subject, &payment("")).await;

    let with_corridor =
        payment(r#",{"name":"corridorCode","type":["null","string"],"default":null}"#);
    let v2 = api.register_ok(&subject, &with_corridor).await;
    assert_ne!(v1, v2);
    let (_, versions) = api.get(&format!("/subjects/{subject}/versions")).await;
    assert_eq!(versions, json!([1, 2]));

    // Removing a field without a default: consumers still on v1 could not read new data.
    let removed = r#"{"type":"record","name":"Payment","namespace":"test.paystream","fields":[
        {"name":"paymentId","type":"string"}]}"#;
    let (status, body) = api.register(&subject, removed).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), 409);
    assert!(
        body["message"].as_str().unwrap().contains("incompatible"),
        "{body}"
    );

    // Changing a type: neither side can read the other.
    let retyped = r#"{"type":"record","name":"Payment","namespace":"test.paystream","fields":[
        {"name":"paymentId","type":"string"},{"name":"amountMinor","type":"string"}]}"#;
    let (status, body) = api.register(&subject, retyped).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), 409);

    let (_, versions) = api.get(&format!("/subjects/{subject}/versions")).await;
    assert_eq!(
        versions,
        json!([1, 2]),
        "refused schemas must not become versions"
    );

    let (status, check) = api
        .post(
            &format!("/compatibility/subjects/{subject}/versions/latest?verbose=true"),
            json!({ "schema": retyped }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{check}");
    assert_eq!(check["is_compatible"], false);
    assert!(!check["messages"].as_array().unwrap().is_empty());

    let with_note = payment(
        r#",{"name":"corridorCode","type":["null","string"],"default":null},
           {"name":"note","type":["null","string"],"default":null}"#,
    );
    let (_, check) = api
        .post(
            &format!("/compatibility/subjects/{subject}/versions/1"),
            json!({ "schema": with_note }),
        )
        .await;
    assert_eq!(check["is_compatible"], true);
}

#[tokio::test]
async fn errors_carry_confluent_error_codes() {
    let api = Api::start().await;
    let subject = unique("errors-value");

    let (status, body) = api.get(&format!("/subjects/{subject}/versions")).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40401));

    api.register_ok(&subject, &payment("")).await;
    let (status, body) = api.get(&format!("/subjects/{subject}/versions/7")).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40402));
    let (status, body) = api.get(&format!("/subjects/{subject}/versions/zero")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, 42202)
    );

    let (status, body) = api.get("/schemas/ids/2147480000").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40403));

    let (status, body) = api
        .register(&subject, r#"{"type":"record","name":"Broken"}"#)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, 42201)
    );

    let (status, body) = api
        .put(
            &format!("/config/{subject}"),
            json!({ "compatibility": "SIDEWAYS" }),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, 42203)
    );

    let (status, body) = api
        .post(
            &format!("/subjects/{subject}"),
            json!({ "schema": payment(r#",{"name":"x","type":"int"}"#) }),
        )
        .await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40403));
}

#[tokio::test]
async fn config_is_global_with_per_subject_overrides() {
    let api = Api::start().await;
    let subject = unique("config-value");

    let (status, global) = api.get("/config").await;
    assert_eq!(status, StatusCode::OK);
    let global_level = global["compatibilityLevel"].as_str().unwrap().to_owned();

    let (status, body) = api.get(&format!("/config/{subject}")).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40408));
    let (_, body) = api
        .get(&format!("/config/{subject}?defaultToGlobal=true"))
        .await;
    assert_eq!(body["compatibilityLevel"], global_level);

    api.set_subject_level(&subject, "FORWARD").await;
    let (_, body) = api.get(&format!("/config/{subject}")).await;
    assert_eq!(body["compatibilityLevel"], "FORWARD");

    let (status, body) = api.delete(&format!("/config/{subject}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["compatibilityLevel"], "FORWARD");
    let (status, _) = api.get(&format!("/config/{subject}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_global_level_can_be_changed() {
    // Our own registry only: changing the global level of a shared one would
    // disturb other users.
    let registry = TestRegistry::start_own().await;
    let http = reqwest::Client::new();
    let response = http
        .put(format!("{}/config", registry.url))
        .body(json!({ "compatibility": "full_transitive" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = http
        .get(format!("{}/config", registry.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["compatibilityLevel"], "FULL_TRANSITIVE");
}

#[tokio::test]
async fn soft_deleted_schemas_still_resolve_by_id_and_hard_delete_needs_soft_first() {
    let api = Api::start().await;
    let subject = unique("deletes-value");
    api.set_subject_level(&subject, "NONE").await;
    let id = api.register_ok(&subject, &payment("")).await;
    api.register_ok(&subject, r#""string""#).await;

    let (status, body) = api
        .delete(&format!("/subjects/{subject}?permanent=true"))
        .await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40405));

    let (status, body) = api.delete(&format!("/subjects/{subject}/versions/2")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!(2));
    let (_, versions) = api.get(&format!("/subjects/{subject}/versions")).await;
    assert_eq!(versions, json!([1]));
    let (_, versions) = api
        .get(&format!("/subjects/{subject}/versions?deleted=true"))
        .await;
    assert_eq!(versions, json!([1, 2]));

    let (status, body) = api.delete(&format!("/subjects/{subject}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!([1]));
    let (status, body) = api.get(&format!("/subjects/{subject}/versions")).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40401));
    let (_, subjects) = api.get("/subjects").await;
    assert!(!subjects.as_array().unwrap().contains(&json!(subject)));
    let (_, subjects) = api.get("/subjects?deleted=true").await;
    assert!(subjects.as_array().unwrap().contains(&json!(subject)));

    // Records written with a soft-deleted schema are still on the topics.
    let (status, _) = api.get(&format!("/schemas/ids/{id}")).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = api
        .delete(&format!("/subjects/{subject}?permanent=true"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!([1, 2]));
    let (_, subjects) = api.get("/subjects?deleted=true").await;
    assert!(!subjects.as_array().unwrap().contains(&json!(subject)));
}

#[tokio::test]
async fn concurrent_registrations_to_one_subject_get_distinct_consecutive_versions() {
    let api = Api::start().await;
    let subject = unique("concurrent-value");
    api.set_subject_level(&subject, "NONE").await;
    let registrations = (0..8).map(|n| {
        let schema = payment(&format!(
            r#",{{"name":"field{n}","type":["null","string"],"default":null}}"#
        ));
        let api = &api;
        let subject = subject.clone();
        async move { api.register_ok(&subject, &schema).await }
    });
    let mut ids = futures::future::join_all(registrations).await;
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 8, "every distinct schema gets its own id");
    let (_, versions) = api.get(&format!("/subjects/{subject}/versions")).await;
    assert_eq!(versions, json!([1, 2, 3, 4, 5, 6, 7, 8]));
}

#[tokio::test]
async fn boolean_query_parameters_ignore_case() {
    // Confluent's Python client sends `True`/`False`; Confluent's server takes them.
    let api = Api::start().await;
    let subject = unique("flags-value");
    api.set_subject_level(&subject, "NONE").await;
    let id = api.register_ok(&subject, &payment("")).await;
    api.register_ok(&subject, r#""string""#).await;

    let (status, found) = api
        .post(
            &format!("/subjects/{subject}?normalize=False&deleted=False"),
            json!({ "schema": payment("") }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["id"], id);

    let retyped = r#"{"type":"record","name":"Payment","namespace":"test.paystream","fields":[
        {"name":"paymentId","type":"string"},{"name":"amountMinor","type":"string"}]}"#;
    for (verbose, lists_reasons) in [("True", true), ("TRUE", true), ("False", false)] {
        let (status, check) = api
            .post(
                &format!(
                    "/compatibility/subjects/{subject}/versions/1?normalize=True&verbose={verbose}"
                ),
                json!({ "schema": retyped }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "verbose={verbose}: {check}");
        assert_eq!(
            check.get("messages").is_some(),
            lists_reasons,
            "verbose={verbose}: {check}"
        );
    }

    let (status, body) = api
        .get(&format!("/config/{subject}-unset?defaultToGlobal=True"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, _) = api.delete(&format!("/subjects/{subject}/versions/2")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, versions) = api
        .get(&format!("/subjects/{subject}/versions?deleted=True"))
        .await;
    assert_eq!(versions, json!([1, 2]));
    let (status, body) = api
        .delete(&format!("/subjects/{subject}/versions/2?permanent=True"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, versions) = api
        .get(&format!("/subjects/{subject}/versions?deleted=tRuE"))
        .await;
    assert_eq!(versions, json!([1]));
}

#[tokio::test]
async fn a_query_flag_that_is_not_a_boolean_is_refused_with_a_confluent_error() {
    // Our own registry only: Confluent's reads anything but `true` as false.
    let registry = TestRegistry::start_own().await;
    let api = Api {
        base: registry.url.clone(),
        http: reqwest::Client::new(),
        _registry: registry,
    };
    let subject = unique("bad-flags-value");
    api.register_ok(&subject, &payment("")).await;

    for path in [
        format!("/subjects/{subject}/versions?deleted=yes"),
        format!("/subjects/{subject}/versions?deleted="),
        format!("/config/{subject}?defaultToGlobal=1"),
    ] {
        let (status, body) = api.get(&path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(error_code(&body), 400, "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("true or false"),
            "{path}: {body}"
        );
    }
    let (status, body) = api
        .post(
            &format!("/compatibility/subjects/{subject}/versions/latest?verbose=maybe"),
            json!({ "schema": payment("") }),
        )
        .await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, 400));
    assert!(
        body["message"].as_str().unwrap().contains("'verbose'"),
        "{body}"
    );
    let (status, body) = api
        .post(
            &format!("/subjects/{subject}?normalize=sometimes"),
            json!({ "schema": payment("") }),
        )
        .await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, 400));
    let (status, body) = api
        .delete(&format!("/subjects/{subject}?permanent=please"))
        .await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, 400));
}
