use chrono::{NaiveDate, TimeZone, Utc};
use paystream_iso20022::{Agent, CreditTransfer, Iso20022Error, Party, StatusReport, TxStatus};
use uuid::Uuid;

fn transfer() -> CreditTransfer {
    CreditTransfer {
        message_id: "PSTR-20261130-0001".into(),
        created_at: Utc.with_ymd_and_hms(2026, 11, 30, 9, 30, 0).unwrap(),
        instruction_id: "INSTR-0001".into(),
        end_to_end_id: "INV-2026-11-0042".into(),
        transaction_id: "TX-0001".into(),
        uetr: Uuid::parse_str("8a562c67-ca16-48ba-b074-65581be6f001").unwrap(),
        amount_minor: 125_050,
        currency: "EUR".into(),
        settlement_date: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        instructing_agent: Agent {
            bic: "COBADEFFXXX".into(),
        },
        instructed_agent: Agent {
            bic: "FIRNZAJJXXX".into(),
        },
        debtor: Party {
            name: "Anna Schmidt".into(),
            country: "DE".into(),
            account: "DE89370400440532013000".into(),
            agent: Agent {
                bic: "COBADEFFXXX".into(),
            },
        },
        creditor: Party {
            name: "Thabo Nkosi & Sons <Pty>".into(),
            country: "ZA".into(),
            account: "62000012345".into(),
            agent: Agent {
                bic: "FIRNZAJJXXX".into(),
            },
        },
        remittance_information: Some("Invoice 42, November".into()),
    }
}

#[test]
fn a_credit_transfer_is_written_as_pacs_008_and_read_back_unchanged() {
    let transfer = transfer();
    let xml = transfer.to_xml().unwrap();
    for expected in [
        r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08">"#,
        "<NbOfTxs>1</NbOfTxs>",
        "<SttlmMtd>CLRG</SttlmMtd>",
        "<UETR>8a562c67-ca16-48ba-b074-65581be6f001</UETR>",
        r#"<IntrBkSttlmAmt Ccy="EUR">1250.50</IntrBkSttlmAmt>"#,
        "<IntrBkSttlmDt>2026-11-30</IntrBkSttlmDt>",
        "<ChrgBr>SLEV</ChrgBr>",
        "<IBAN>DE89370400440532013000</IBAN>",
        "<Othr>",
        // Names are escaped by the writer, not trusted.
        "Thabo Nkosi &amp; Sons &lt;Pty&gt;",
    ] {
        assert!(xml.contains(expected), "{expected} not in\n{xml}");
    }
    assert_eq!(CreditTransfer::from_xml(&xml).unwrap(), transfer);
}

#[test]
fn amounts_keep_the_currency_exponent() {
    let mut yen = transfer();
    yen.currency = "JPY".into();
    yen.amount_minor = 150_000;
    let xml = yen.to_xml().unwrap();
    assert!(xml.contains(r#"<IntrBkSttlmAmt Ccy="JPY">150000</IntrBkSttlmAmt>"#));
    assert_eq!(
        CreditTransfer::from_xml(&xml).unwrap().amount_minor,
        150_000
    );
}

#[test]
fn malformed_or_incomplete_documents_are_refused_with_the_element_named() {
    let xml = transfer().to_xml().unwrap();
    let cases = [
        (
            "<UETR>8a562c67-ca16-48ba-b074-65581be6f001</UETR>",
            "<UETR>not-a-uuid</UETR>",
            "UETR",
        ),
        ("1250.50", "1250.505", "1250.505"),
        ("<NbOfTxs>1</NbOfTxs>", "<NbOfTxs>2</NbOfTxs>", "NbOfTxs"),
        (
            "<SttlmMtd>CLRG</SttlmMtd>",
            "<SttlmMtd>INDA</SttlmMtd>",
            "SttlmMtd",
        ),
        ("pacs.008.001.08", "pacs.008.001.02", "namespace"),
        (
            "<MsgId>PSTR-20261130-0001</MsgId>",
            "<MsgId> </MsgId>",
            "MsgId",
        ),
    ];
    for (from, to, named) in cases {
        let broken = xml.replace(from, to);
        assert_ne!(broken, xml, "{from} not in the document");
        let error = CreditTransfer::from_xml(&broken).unwrap_err();
        assert!(error.to_string().contains(named), "{named}: {error}");
    }
    let without_creditor = {
        let start = xml.find("<Cdtr>").unwrap();
        let end = xml.find("</Cdtr>").unwrap() + "</Cdtr>".len();
        format!("{}{}", &xml[..start], &xml[end..])
    };
    assert!(matches!(
        CreditTransfer::from_xml(&without_creditor),
        Err(Iso20022Error::Xml(_))
    ));
    assert!(CreditTransfer::from_xml("not xml at all").is_err());
}

fn report(status: TxStatus, reason: Option<&str>) -> StatusReport {
    StatusReport {
        message_id: "RTGS-20261130-0001".into(),
        created_at: Utc.with_ymd_and_hms(2026, 11, 30, 9, 30, 2).unwrap(),
        original_message_id: "PSTR-20261130-0001".into(),
        original_end_to_end_id: "INV-2026-11-0042".into(),
        uetr: Uuid::parse_str("8a562c67-ca16-48ba-b074-65581be6f001").unwrap(),
        status,
        reason: reason.map(str::to_owned),
        reason_text: reason.map(|_| "Creditor account closed".to_owned()),
        settlement_date: (status == TxStatus::AcceptedSettlementCompleted)
            .then(|| NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()),
        clearing_reference: Some("T2-20261130-000042".into()),
    }
}

#[test]
fn status_reports_are_written_as_pacs_002_and_read_back() {
    for report in [
        report(TxStatus::AcceptedSettlementCompleted, None),
        report(TxStatus::AcceptedSettlementInProcess, None),
        report(TxStatus::Rejected, Some("AC04")),
    ] {
        let xml = report.to_xml().unwrap();
        assert!(
            xml.contains(r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10">"#)
        );
        assert!(xml.contains(&format!("<TxSts>{}</TxSts>", report.status.code())));
        assert!(xml.contains("<OrgnlMsgNmId>pacs.008.001.08</OrgnlMsgNmId>"));
        assert_eq!(StatusReport::from_xml(&xml).unwrap(), report);
    }
    let rejected = report(TxStatus::Rejected, Some("AM04")).to_xml().unwrap();
    assert!(rejected.contains("<Cd>AM04</Cd>"));
    assert!(rejected.contains("<AddtlInf>Creditor account closed</AddtlInf>"));
    let settled = report(TxStatus::AcceptedSettlementCompleted, None)
        .to_xml()
        .unwrap();
    assert!(settled.contains("<FctvIntrBkSttlmDt>"));
    assert!(settled.contains("<Dt>2026-11-30</Dt>"));
    assert!(settled.contains("<ClrSysRef>T2-20261130-000042</ClrSysRef>"));
    assert!(TxStatus::Rejected.is_final() && !TxStatus::Pending.is_final());
}

#[test]
fn a_rejection_without_a_reason_is_neither_written_nor_read() {
    assert!(report(TxStatus::Rejected, None).to_xml().is_err());
    assert!(
        report(TxStatus::AcceptedSettlementCompleted, Some("AC04"))
            .to_xml()
            .is_err()
    );
    let xml = report(TxStatus::Rejected, Some("AC04")).to_xml().unwrap();
    let start = xml.find("<StsRsnInf>").unwrap();
    let end = xml.find("</StsRsnInf>").unwrap() + "</StsRsnInf>".len();
    let bare = format!("{}{}", &xml[..start], &xml[end..]);
    assert!(StatusReport::from_xml(&bare).is_err());
    let unknown = xml.replace("<TxSts>RJCT</TxSts>", "<TxSts>XXXX</TxSts>");
    assert!(StatusReport::from_xml(&unknown).is_err());
}
