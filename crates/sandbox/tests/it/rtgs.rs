//! The RTGS rail over real HTTP: acknowledgements, settlement, signed
//! callbacks to a real listener, status queries, and each knob that makes
//! the rail misbehave. Only the rail is played, so no reference data is read.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::Utc;
use paystream_iso20022::{Agent, CreditTransfer, Party, StatusReport, TxStatus};
use paystream_sandbox::rtgs::RailReport;
use paystream_sandbox::{Config, Provider, RTGS, Server};
use paystream_service_kit::signing;
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::{Sandbox, eventually};

const SECRET: &str = "test-rail-secret";
const CLOSED: &str = "DE02120300000000202051";

fn transfer() -> CreditTransfer {
    let uetr = Uuid::new_v4();
    let tag = uetr.simple().to_string()[..12].to_owned();
    let bank = |bic: &str| Agent { bic: bic.into() };
    CreditTransfer {
        message_id: format!("PSTR-{tag}"),
        created_at: Utc::now(),
        instruction_id: format!("INSTR-{tag}"),
        end_to_end_id: format!("E2E-{tag}"),
        transaction_id: format!("TX-{tag}"),
        uetr,
        amount_minor: 125_050,
        currency: "EUR".into(),
        settlement_date: Utc::now().date_naive(),
        instructing_agent: bank("COBADEFFXXX"),
        instructed_agent: bank("ABNANL2AXXX"),
        debtor: Party {
            name: "Anna Schmidt".into(),
            country: "DE".into(),
            account: "DE89370400440532013000".into(),
            agent: bank("COBADEFFXXX"),
        },
        creditor: Party {
            name: "Jan de Vries".into(),
            country: "NL".into(),
            account: "NL91ABNA0417164300".into(),
            agent: bank("ABNANL2AXXX"),
        },
        remittance_information: Some("Invoice 42".into()),
    }
}

fn today_reference_prefix() -> String {
    format!("RTGS-{}-", Utc::now().format("%Y%m%d"))
}

/// A callback as the receiver got it, its signature checked.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    content_type: String,
    body: String,
    report: StatusReport,
}

#[derive(Default)]
struct Inbox {
    deliveries: Mutex<Vec<Delivery>>,
    attempts: AtomicUsize,
    /// Attempts still to be answered 500, to make the rail retry.
    failures_left: AtomicUsize,
    bad_signatures: AtomicUsize,
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    inbox.attempts.fetch_add(1, Ordering::SeqCst);
    let fail = inbox
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        });
    if fail.is_ok() {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let Ok(id) = signing::verify(
        SECRET.as_bytes(),
        &headers,
        &body,
        signing::DEFAULT_TOLERANCE,
    ) else {
        inbox.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    };
    let body = String::from_utf8(body.to_vec()).unwrap();
    let report = StatusReport::from_xml(&body).unwrap();
    let content_type = headers["content-type"].to_str().unwrap().to_owned();
    inbox.deliveries.lock().unwrap().push(Delivery {
        id,
        content_type,
        body,
        report,
    });
    StatusCode::NO_CONTENT
}

/// A callback receiver on a free loopback port.
struct Receiver {
    url: String,
    inbox: Arc<Inbox>,
    shutdown: CancellationToken,
}

impl Receiver {
    async fn start(failures: usize) -> Self {
        let inbox = Arc::new(Inbox::default());
        inbox.failures_left.store(failures, Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("http://{}/callbacks", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .route("/callbacks", axum::routing::post(receive))
            .with_state(inbox.clone());
        let shutdown = CancellationToken::new();
        let serving = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        tokio::spawn(async move { serving.await });
        Self {
            url,
            inbox,
            shutdown,
        }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.inbox.deliveries.lock().unwrap().clone()
    }

    /// The deliveries for one UETR, once there are `count` of them.
    async fn wait_for(&self, uetr: Uuid, count: usize) -> Vec<Delivery> {
        eventually(&format!("{count} callbacks for {uetr}"), async || {
            let for_uetr: Vec<Delivery> = self
                .deliveries()
                .into_iter()
                .filter(|delivery| delivery.report.uetr == uetr)
                .collect();
            (for_uetr.len() >= count).then_some(for_uetr)
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A sandbox playing only the rail, calling back a receiver.
struct Rig {
    sandbox: Sandbox,
    receiver: Receiver,
}

async fn rig(rail: &str) -> Rig {
    rig_failing(rail, 0).await
}

async fn rig_failing(rail: &str, failures: usize) -> Rig {
    let receiver = Receiver::start(failures).await;
    let mut config = Config::local();
    config.providers = vec![Provider::Rtgs];
    config.rtgs_rail = rail.parse().unwrap();
    config.rtgs_callback_url = Some(receiver.url.clone());
    config.rtgs_callback_secret = SECRET.into();
    config.rtgs_closed_accounts = vec![CLOSED.into()];
    let sandbox = Sandbox::start(config).await.serve();
    Rig { sandbox, receiver }
}

impl Rig {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base)
    }

    async fn post(&self, document: &str) -> reqwest::Response {
        self.sandbox
            .http
            .post(self.url("/rtgs/pacs.008"))
            .header("content-type", "application/xml")
            .body(document.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// Submits a transfer that must be acknowledged: the raw answer and its report.
    async fn submit(&self, transfer: &CreditTransfer) -> (String, StatusReport) {
        let response = self.post(&transfer.to_xml().unwrap()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/xml");
        let body = response.text().await.unwrap();
        let report = StatusReport::from_xml(&body).unwrap();
        (body, report)
    }

    async fn status(&self, uetr: &str) -> reqwest::Response {
        self.sandbox
            .http
            .get(self.url(&format!("/rtgs/status/{uetr}")))
            .send()
            .await
            .unwrap()
    }

    async fn status_report(&self, uetr: Uuid) -> StatusReport {
        let response = self.status(&uetr.to_string()).await;
        assert_eq!(response.status(), StatusCode::OK);
        StatusReport::from_xml(&response.text().await.unwrap()).unwrap()
    }

    async fn report(&self) -> RailReport {
        let response = self
            .sandbox
            .http
            .get(self.url("/admin/rtgs/report"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    async fn put(&self, path: &str, body: &str) -> reqwest::Response {
        self.sandbox
            .http
            .put(self.url(path))
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    async fn get_text(&self, path: &str) -> String {
        let response = self.sandbox.http.get(self.url(path)).send().await.unwrap();
        response.text().await.unwrap()
    }
}

#[tokio::test]
async fn a_transfer_is_acknowledged_then_settled_with_a_signed_callback_once() {
    let rig = rig("settle=100ms").await;
    let first = transfer();
    let (ack_body, ack) = rig.submit(&first).await;
    assert_eq!(ack.status, TxStatus::AcceptedSettlementInProcess);
    assert_eq!(ack.uetr, first.uetr);
    assert_eq!(ack.original_message_id, first.message_id);
    assert_eq!(ack.original_end_to_end_id, first.end_to_end_id);
    assert_eq!((ack.reason.as_deref(), ack.settlement_date), (None, None));
    let reference = ack.clearing_reference.clone().unwrap();
    let number = reference.strip_prefix(&today_reference_prefix()).unwrap();
    assert!(
        number.len() == 6 && number.bytes().all(|b| b.is_ascii_digit()),
        "{reference}"
    );

    let settled = rig.receiver.wait_for(first.uetr, 1).await;
    let callback = &settled[0];
    assert_eq!(callback.content_type, "application/xml");
    assert_eq!(
        callback.report.status,
        TxStatus::AcceptedSettlementCompleted
    );
    assert_eq!(
        callback.report.settlement_date,
        Some(Utc::now().date_naive())
    );
    assert_eq!(
        callback.report.clearing_reference.as_deref(),
        Some(reference.as_str())
    );
    assert_eq!(callback.report.original_message_id, first.message_id);
    assert_eq!(callback.id, callback.report.message_id);
    assert_ne!(callback.id, ack.message_id);

    // The same document again: the same acknowledgement, byte for byte.
    let (again, _) = rig.submit(&first).await;
    assert_eq!(again, ack_body);
    // A later transfer settles after the same delay; by its callback, a
    // second settlement of the first would have been called back too.
    let second = transfer();
    let (_, second_ack) = rig.submit(&second).await;
    assert_ne!(second_ack.clearing_reference, ack.clearing_reference);
    rig.receiver.wait_for(second.uetr, 1).await;
    assert_eq!(rig.receiver.wait_for(first.uetr, 1).await.len(), 1);
    assert_eq!(rig.receiver.inbox.bad_signatures.load(Ordering::SeqCst), 0);

    let report = rig.report().await;
    assert_eq!(report.submissions, 3);
    assert_eq!(report.distinct_uetrs, 2);
    assert_eq!(report.repeats, 1);
    assert_eq!(
        (report.settled, report.rejected, report.in_flight),
        (2, 0, 0)
    );
    assert!(report.settled_twice.is_empty());
    assert_eq!(report.callbacks.delivered, 2);
    let entry = &report.uetrs[&first.uetr.to_string()];
    assert_eq!(
        (entry.status.as_str(), entry.submissions, entry.settlements),
        ("ACSC", 2, 1)
    );
    assert_eq!(entry.clearing_reference, reference);
    // The in-process handle tells the same.
    assert_eq!(rig.sandbox.rail.as_ref().unwrap().report(), report);
}

#[tokio::test]
async fn a_known_uetr_with_other_content_is_a_conflict() {
    let rig = rig("settle=50ms").await;
    let original = transfer();
    rig.submit(&original).await;
    let mut changed = original.clone();
    changed.amount_minor += 1;
    let response = rig.post(&changed.to_xml().unwrap()).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let problem: Value = response.json().await.unwrap();
    let message = problem["error"].as_str().unwrap();
    assert!(message.contains(&original.uetr.to_string()), "{message}");

    let settled = rig.receiver.wait_for(original.uetr, 1).await;
    assert_eq!(settled.len(), 1);
    let report = rig.report().await;
    assert_eq!(
        (report.submissions, report.repeats, report.conflicts),
        (1, 0, 1)
    );
    assert_eq!(report.uetrs[&original.uetr.to_string()].settlements, 1);
}

#[tokio::test]
async fn malformed_and_incomplete_documents_are_rejected_ff01_and_not_recorded() {
    let rig = rig("ok").await;
    let response = rig.post("this is not a pacs.008").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["content-type"], "application/xml");
    let refused = StatusReport::from_xml(&response.text().await.unwrap()).unwrap();
    assert_eq!(refused.status, TxStatus::Rejected);
    assert_eq!(refused.reason.as_deref(), Some("FF01"));
    assert!(!refused.reason_text.unwrap_or_default().is_empty());
    assert_eq!(refused.uetr, Uuid::nil());
    assert_eq!(refused.original_message_id, "UNKNOWN");
    assert_eq!(refused.original_end_to_end_id, "UNKNOWN");

    let incomplete = transfer();
    let element = format!("<EndToEndId>{}</EndToEndId>", incomplete.end_to_end_id);
    let document = incomplete.to_xml().unwrap().replace(&element, "");
    let response = rig.post(&document).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let refused = StatusReport::from_xml(&response.text().await.unwrap()).unwrap();
    assert_eq!(refused.reason.as_deref(), Some("FF01"));
    let text = refused.reason_text.unwrap_or_default();
    assert!(text.contains("EndToEndId"), "{text}");
    // What the document does show is reported on.
    assert_eq!(refused.uetr, incomplete.uetr);
    assert_eq!(refused.original_message_id, incomplete.message_id);

    let unknown = rig.status(&incomplete.uetr.to_string()).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let report = rig.report().await;
    assert_eq!(
        (report.malformed, report.submissions, report.distinct_uetrs),
        (2, 0, 0)
    );
}

#[tokio::test]
async fn status_queries_follow_the_transfer_and_an_unknown_uetr_is_a_404() {
    let rig = rig("settle=2s,pending=1").await;
    let pending = transfer();
    let (_, ack) = rig.submit(&pending).await;
    assert_eq!(ack.status, TxStatus::Pending);

    let before = rig.status_report(pending.uetr).await;
    assert_eq!(before.status, TxStatus::Pending);
    assert_eq!(before.clearing_reference, ack.clearing_reference);
    assert_ne!(before.message_id, ack.message_id);
    let mut queries = 1;
    let after = eventually("the status query to show ACSC", async || {
        queries += 1;
        let report = rig.status_report(pending.uetr).await;
        report.status.is_final().then_some(report)
    })
    .await;
    assert_eq!(after.status, TxStatus::AcceptedSettlementCompleted);
    assert_eq!(after.settlement_date, Some(Utc::now().date_naive()));
    assert_eq!(after.clearing_reference, ack.clearing_reference);

    let unknown = rig.status(&Uuid::new_v4().to_string()).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let problem: Value = unknown.json().await.unwrap();
    assert!(problem["error"].is_string(), "{problem}");
    let not_a_uetr = rig.status("not-a-uuid").await;
    assert_eq!(not_a_uetr.status(), StatusCode::BAD_REQUEST);
    assert_eq!(rig.report().await.status_queries, queries + 2);
}

#[tokio::test]
async fn a_closed_account_is_rejected_ac04_and_rejections_take_the_reasons_given() {
    let rig = rig("settle=50ms").await;
    let mut closed = transfer();
    closed.creditor.account = CLOSED.into();
    let (_, ack) = rig.submit(&closed).await;
    assert_eq!(ack.status, TxStatus::AcceptedSettlementInProcess);
    let rejected = &rig.receiver.wait_for(closed.uetr, 1).await[0].report;
    assert_eq!(rejected.status, TxStatus::Rejected);
    assert_eq!(rejected.reason.as_deref(), Some("AC04"));
    assert_eq!(
        rejected.reason_text.as_deref(),
        Some("Creditor account closed")
    );
    assert_eq!(rejected.settlement_date, None);
    assert_eq!(rejected.clearing_reference, ack.clearing_reference);

    let set = rig
        .put("/admin/rtgs/rail", "settle=50ms,rejections=1,reasons=AM04")
        .await;
    assert_eq!(set.status(), StatusCode::OK);
    let unlucky = transfer();
    rig.submit(&unlucky).await;
    let rejected = &rig.receiver.wait_for(unlucky.uetr, 1).await[0].report;
    assert_eq!(rejected.reason.as_deref(), Some("AM04"));

    let report = rig.report().await;
    assert_eq!((report.settled, report.rejected), (0, 2));
    let entry = &report.uetrs[&closed.uetr.to_string()];
    assert_eq!(
        (entry.status.as_str(), entry.reason.as_deref()),
        ("RJCT", Some("AC04"))
    );
}

#[tokio::test]
async fn duplicates_deliver_the_same_final_callback_twice() {
    let rig = rig("duplicates=1").await;
    let twice = transfer();
    rig.submit(&twice).await;
    let deliveries = rig.receiver.wait_for(twice.uetr, 2).await;
    assert_eq!(deliveries[0].id, deliveries[1].id);
    assert_eq!(deliveries[0].body, deliveries[1].body);
    assert_eq!(
        deliveries[0].report.status,
        TxStatus::AcceptedSettlementCompleted
    );
    let report = rig.report().await;
    assert_eq!(
        (report.callbacks.delivered, report.callbacks.duplicated),
        (2, 1)
    );
    assert_eq!(report.uetrs[&twice.uetr.to_string()].settlements, 1);
    assert!(report.settled_twice.is_empty());
}

#[tokio::test]
async fn a_lost_callback_leaves_the_status_query_to_tell() {
    let rig = rig("lost=1").await;
    let lost = transfer();
    rig.submit(&lost).await;
    eventually("the status query to show ACSC", async || {
        let report = rig.status_report(lost.uetr).await;
        (report.status == TxStatus::AcceptedSettlementCompleted).then_some(())
    })
    .await;
    // Counted where the callback would have been sent: nothing follows it.
    eventually("the lost callback to be counted", async || {
        (rig.report().await.callbacks.lost == 1).then_some(())
    })
    .await;
    assert!(rig.receiver.deliveries().is_empty());
    assert_eq!(rig.report().await.callbacks.delivered, 0);
}

#[tokio::test]
async fn reorder_delivers_a_stale_acsp_after_the_final_report() {
    let rig = rig("reorder=1").await;
    let reordered = transfer();
    rig.submit(&reordered).await;
    let deliveries = rig.receiver.wait_for(reordered.uetr, 2).await;
    let (last_word, stale) = (&deliveries[0].report, &deliveries[1].report);
    assert_eq!(last_word.status, TxStatus::AcceptedSettlementCompleted);
    assert_eq!(stale.status, TxStatus::AcceptedSettlementInProcess);
    assert!(stale.created_at < last_word.created_at);
    assert_ne!(deliveries[0].id, deliveries[1].id);
    assert_eq!(stale.clearing_reference, last_word.clearing_reference);
    let report = rig.report().await;
    assert_eq!(
        (report.callbacks.delivered, report.callbacks.reordered),
        (2, 1)
    );
    assert_eq!(report.settled, 1);
}

#[tokio::test]
async fn a_late_answer_comes_after_the_client_gave_up_but_the_transfer_stands() {
    let rig = rig("late=1,late-by=2s").await;
    let late = transfer();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let error = impatient
        .post(rig.url("/rtgs/pacs.008"))
        .body(late.to_xml().unwrap())
        .send()
        .await
        .err()
        .unwrap();
    assert!(error.is_timeout(), "{error}");

    let recorded = rig.status_report(late.uetr).await;
    assert!(recorded.clearing_reference.is_some());
    let settled = rig.receiver.wait_for(late.uetr, 1).await;
    assert_eq!(
        settled[0].report.status,
        TxStatus::AcceptedSettlementCompleted
    );
    // Sending it again is safe and answered at once.
    let (_, ack) = rig.submit(&late).await;
    assert_eq!(ack.clearing_reference, recorded.clearing_reference);
    let report = rig.report().await;
    assert_eq!(
        (report.submissions, report.repeats, report.settled),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn a_failed_callback_is_retried() {
    let rig = rig_failing("settle=0", 2).await;
    let retried = transfer();
    rig.submit(&retried).await;
    let deliveries = rig.receiver.wait_for(retried.uetr, 1).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(rig.receiver.inbox.attempts.load(Ordering::SeqCst), 3);
    let report = rig.report().await;
    assert_eq!(
        (report.callbacks.delivered, report.callbacks.failed),
        (1, 0)
    );
}

#[tokio::test]
async fn the_rail_goes_down_through_its_behaviour_and_its_admin_stays_up() {
    let rig = rig("ok").await;
    let admin = format!("/admin/providers/{RTGS}/behaviour");
    assert_eq!(rig.put(&admin, "down").await.status(), StatusCode::OK);
    let document = transfer().to_xml().unwrap();
    assert_eq!(
        rig.post(&document).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let status = rig.status(&Uuid::new_v4().to_string()).await;
    assert_eq!(status.status(), StatusCode::SERVICE_UNAVAILABLE);
    let report = rig.report().await;
    assert_eq!((report.submissions, report.status_queries), (0, 0));

    assert_eq!(rig.put(&admin, "ok").await.status(), StatusCode::OK);
    assert_eq!(rig.post(&document).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_rail_admin_reads_and_sets_the_knobs_and_the_callback_url() {
    let rig = rig("settle=50ms").await;
    assert_eq!(rig.get_text("/admin/rtgs/rail").await, "settle=50ms");
    let set = rig.put("/admin/rtgs/rail", "lost=0.5, settle=100ms").await;
    assert_eq!(set.status(), StatusCode::OK);
    assert_eq!(set.text().await.unwrap(), "settle=100ms,lost=0.5");
    let rail = rig.sandbox.rail.clone().unwrap();
    assert_eq!(rail.behaviour().lost, 0.5);
    for (spec, named) in [("settle=fast", "settle"), ("lossed=1", "lossed")] {
        let refused = rig.put("/admin/rtgs/rail", spec).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{spec}");
        let problem: Value = refused.json().await.unwrap();
        assert!(
            problem["error"].as_str().unwrap().contains(named),
            "{problem}"
        );
    }
    assert_eq!(
        rig.get_text("/admin/rtgs/rail").await,
        "settle=100ms,lost=0.5"
    );
    rail.set_behaviour("settle=0".parse().unwrap());

    assert_eq!(
        rig.get_text("/admin/rtgs/callback-url").await,
        rig.receiver.url
    );
    assert_eq!(
        rig.put("/admin/rtgs/callback-url", "").await.status(),
        StatusCode::OK
    );
    assert_eq!(rig.get_text("/admin/rtgs/callback-url").await, "");
    let refused = rig.put("/admin/rtgs/callback-url", "not a url").await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let unheard = transfer();
    rig.submit(&unheard).await;
    eventually("the transfer to settle", async || {
        rig.status_report(unheard.uetr)
            .await
            .status
            .is_final()
            .then_some(())
    })
    .await;

    rail.set_callback_url(Some(rig.receiver.url.clone()));
    let heard = transfer();
    rig.submit(&heard).await;
    rig.receiver.wait_for(heard.uetr, 1).await;
    assert!(rig.receiver.wait_for(unheard.uetr, 0).await.is_empty());
    assert_eq!(rig.report().await.callbacks.delivered, 1);
}

#[tokio::test]
async fn a_sandbox_loads_and_mounts_only_the_providers_it_plays() {
    let mut config = Config::local();
    config.providers = vec![Provider::Rtgs];
    config.data_dir = "/nonexistent".into();
    let server = Server::build(&config).await.unwrap();
    assert!(server.rail().is_some());
    assert!(server.control(RTGS).is_some());
    assert!(server.control(paystream_sandbox::AML).is_none());
    let sandbox = Sandbox::start(config.clone()).await.serve();
    let lists = sandbox
        .http
        .get(format!("{}/aml/v1/lists", sandbox.base))
        .send()
        .await
        .unwrap();
    assert_eq!(lists.status(), StatusCode::NOT_FOUND);

    // Screening alone reads its lists and no IP data.
    config.providers = vec![Provider::Aml];
    config.sanctions_lists = vec!["UN=/nonexistent/un.xml".parse().unwrap()];
    let error = Server::build(&config).await.err().unwrap();
    assert!(error.to_string().contains("/nonexistent/un.xml"), "{error}");
}
