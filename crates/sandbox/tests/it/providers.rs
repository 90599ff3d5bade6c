//! Each provider's answers, from the real reference data.

use paystream_sandbox::{AML, Config, IP_INTELLIGENCE, Server};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::Sandbox;

#[tokio::test]
async fn ip_addresses_get_their_country_and_network_flags() {
    let sandbox = Sandbox::start(Config::local()).await.serve();

    let (status, google) = sandbox.ip("8.8.8.8").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(google["country_code"], "US");
    assert_eq!(google["security"]["is_vpn"], false);

    let (_, british) = sandbox.ip("81.2.69.142").await;
    assert_eq!(british["country_code"], "GB");

    // 45.83.220.0/22 belongs to AS39351, 31173 Services AB (Mullvad VPN).
    let (_, mullvad) = sandbox.ip("45.83.220.10").await;
    assert_eq!(mullvad["security"]["is_vpn"], true, "{mullvad}");
    assert_eq!(mullvad["connection"]["autonomous_system_number"], 39351);

    // 1.44.96.0/24 is announced by AS16509, Amazon.
    let (_, aws) = sandbox.ip("1.44.96.7").await;
    assert_eq!(aws["security"]["is_hosting"], true, "{aws}");
    assert_eq!(aws["security"]["is_vpn"], false);

    let (_, v6) = sandbox.ip("2001:4860:4860::8888").await;
    assert!(v6["country_code"].is_string(), "{v6}");
    assert_eq!(v6["connection"]["autonomous_system_number"], 15169, "{v6}");

    let (status, error) = sandbox.ip("not-an-ip").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["error"].as_str().unwrap().contains("not-an-ip"));
}

#[tokio::test]
async fn extra_network_lists_flag_tor_exits_and_proxies() {
    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(list.path(), "tor,185.220.101.1\nproxy,203.0.113.0/24\n").unwrap();
    let mut config = Config::local();
    config.network_lists = vec![list.path().to_owned()];
    let sandbox = Sandbox::start(config).await.serve();

    let (_, tor) = sandbox.ip("185.220.101.1").await;
    assert_eq!(tor["security"]["is_tor"], true);
    let (_, proxy) = sandbox.ip("203.0.113.200").await;
    assert_eq!(proxy["security"]["is_proxy"], true);
    let (_, neither) = sandbox.ip("185.220.101.2").await;
    assert_eq!(neither["security"]["is_tor"], false);
}

#[tokio::test]
async fn listed_parties_are_found_in_any_spelling_and_clean_ones_pass() {
    let sandbox = Sandbox::start(Config::local()).await.serve();

    let (status, putin) = sandbox
        .screen_json(
            json!({ "name": "Vladimir Putin", "country": "RU", "dateOfBirth": "1952-10-07" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(putin["riskLevel"], "HIGH", "{putin}");
    let lists: Vec<&str> = putin["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|found| found["list"].as_str().unwrap())
        .collect();
    assert!(
        lists.contains(&"OFAC-SDN") && lists.contains(&"EU"),
        "{lists:?}"
    );

    // Cyrillic, as a bank in Russia would send it.
    let (_, cyrillic) = sandbox
        .screen_json(json!({ "name": "Путин Владимир Владимирович" }))
        .await;
    assert_eq!(cyrillic["riskLevel"], "HIGH", "{cyrillic}");

    // A UN-listed individual under one of his aliases, with a typo.
    let (_, alias) = sandbox
        .screen_json(json!({ "name": "Mohamad Taher Anwari" }))
        .await;
    assert_ne!(alias["riskLevel"], "LOW", "{alias}");
    assert!(
        alias["matches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|found| found["reference"] == "TAi.005"),
        "{alias}"
    );

    let (_, clean) = sandbox
        .screen_json(json!({ "name": "Anna Lena Schmidt", "country": "DE" }))
        .await;
    assert_eq!(clean["riskLevel"], "LOW", "{clean}");

    let (status, _) = sandbox.screen_json(json!({ "name": " " })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let lists: Value = sandbox
        .http
        .get(format!("{}/{AML}/v1/lists", sandbox.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sdn = lists
        .as_array()
        .unwrap()
        .iter()
        .find(|list| list["list"] == "OFAC-SDN")
        .unwrap();
    assert_eq!(sdn["entries"], 14_966);
    assert_eq!(sdn["published"], "05/07/2024");
}

#[tokio::test]
async fn a_missing_list_stops_the_sandbox_from_starting() {
    let mut config = Config::local();
    config.sanctions_lists = vec!["UN=/nonexistent/un.xml".parse().unwrap()];
    let error = Server::build(&config).await.err().unwrap();
    assert!(error.to_string().contains("/nonexistent/un.xml"), "{error}");
}

#[tokio::test]
async fn a_batch_of_addresses_is_answered_in_order_and_a_bad_one_is_refused_alone() {
    let sandbox = Sandbox::start(Config::local()).await.serve();
    let (status, answers) = sandbox
        .post_json(
            IP_INTELLIGENCE,
            "/v1/batch",
            json!(["81.2.69.142", "not-an-address", "45.83.220.10"]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answers}");
    assert_eq!(answers[0]["country_code"], "GB", "{answers}");
    assert_eq!(answers[1]["ip_address"], "not-an-address");
    assert!(
        answers[1]["error"]
            .as_str()
            .is_some_and(|error| error.contains("`not-an-address`")),
        "{answers}"
    );
    assert_eq!(answers[2]["security"]["is_vpn"], true, "{answers}");
    assert_eq!(answers.as_array().map(Vec::len), Some(3));

    for refused in [json!([]), json!(vec!["8.8.8.8"; 1_001])] {
        let (status, _) = sandbox
            .post_json(IP_INTELLIGENCE, "/v1/batch", refused)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn a_batch_of_parties_is_screened_in_order_and_an_unnamed_one_is_refused_alone() {
    let sandbox = Sandbox::start(Config::local()).await.serve();
    let (status, answer) = sandbox
        .post_json(
            AML,
            "/v1/screen/batch",
            json!({ "queries": [
                { "name": "Anna Lena Schmidt", "country": "DE" },
                { "name": " " },
                { "name": "Vladimir Putin", "country": "RU", "dateOfBirth": "1952-10-07" },
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let results = &answer["results"];
    assert_eq!(results.as_array().map(Vec::len), Some(3), "{answer}");
    assert_eq!(results[0]["riskLevel"], "LOW", "{answer}");
    assert_eq!(results[1]["error"], "name is required", "{answer}");
    assert_eq!(results[2]["riskLevel"], "HIGH", "{answer}");

    let (status, _) = sandbox
        .post_json(AML, "/v1/screen/batch", json!({ "queries": [] }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
