//! QUIC + mutual TLS + hello between two real endpoints on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use node::transport::tls::{ALPN, PinnedVerifier};
use node::transport::{PeerTrust, QuicTransport};
use protocol::channel::{Frame, Transport};
use protocol::{Channel, Error, Role, TransportError};

#[tokio::test]
async fn pinned_certificates_connect_and_exchange_hellos() {
    let (gov_id, gov_fp) = tls_identity("gov");
    let (bank_id, bank_fp) = tls_identity("bank");
    let gov = link(&gov_id, &PeerTrust::Pinned(bank_fp), settings("gov", Role::Gov, "bank", Role::Bank));
    let bank = link(&bank_id, &PeerTrust::Pinned(gov_fp), settings("bank", Role::Bank, "gov", Role::Gov));
    let (at_gov, at_bank) = handshake(&gov, &bank).await;
    let (at_gov, at_bank) = (at_gov.unwrap(), at_bank.unwrap());
    assert_eq!((at_gov.peer.name.as_str(), at_gov.peer.role), ("bank", Role::Bank));
    assert_eq!((at_bank.peer.name.as_str(), at_bank.peer.role), ("gov", Role::Gov));
}

#[tokio::test]
async fn private_ca_certificates_connect() {
    let ca = TestCa::new();
    let (gov_id, bank_id) = (ca.leaf("gov"), ca.leaf("bank"));
    let gov = link(&gov_id, &ca.trust(), settings("gov", Role::Gov, "bank", Role::Bank));
    let bank = link(&bank_id, &ca.trust(), settings("bank", Role::Bank, "gov", Role::Gov));
    let (at_gov, at_bank) = handshake(&gov, &bank).await;
    assert_eq!(at_gov.unwrap().peer.name, "bank");
    assert_eq!(at_bank.unwrap().peer.name, "gov");
}

#[tokio::test]
async fn wrong_fingerprint_is_refused_naming_the_fingerprint() {
    let (gov_id, _) = tls_identity("gov");
    let (bank_id, bank_fp) = tls_identity("bank");
    let (_, other_fp) = tls_identity("gov");
    // gov pins the real bank; bank pins some other certificate, not gov's.
    let gov = link(&gov_id, &PeerTrust::Pinned(bank_fp), settings("gov", Role::Gov, "bank", Role::Bank));
    let bank = link(&bank_id, &PeerTrust::Pinned(other_fp), settings("bank", Role::Bank, "gov", Role::Gov));
    let (at_gov, at_bank) = handshake(&bank, &gov).await; // gov dials bank
    let server_err = at_gov.unwrap_err();
    assert!(server_err.contains("does not match the pinned peer.fingerprint"), "{server_err}");
    assert!(server_err.contains(&node::config::format_fingerprint(&other_fp)), "{server_err}");
    let client_err = at_bank.unwrap_err();
    assert!(client_err.contains("did not accept this node's certificate"), "{client_err}");

    // And the other direction: the dialling side refuses a server with the wrong certificate.
    let bank2 = link(&bank_id, &PeerTrust::Pinned(other_fp), settings("bank", Role::Bank, "gov", Role::Gov));
    let gov2 = link(&gov_id, &PeerTrust::Pinned(bank_fp), settings("gov", Role::Gov, "bank", Role::Bank));
    let (_, at_dialler) = handshake(&gov2, &bank2).await; // bank dials gov, bank pins the wrong cert
    let err = at_dialler.unwrap_err();
    assert!(err.contains("does not match the pinned peer.fingerprint"), "{err}");
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let (ca, rogue) = (TestCa::new(), TestCa::new());
    let gov = link(&ca.leaf("gov"), &ca.trust(), settings("gov", Role::Gov, "bank", Role::Bank));
    let bank = link(&rogue.leaf("bank"), &ca.trust(), settings("bank", Role::Bank, "gov", Role::Gov));
    let (at_gov, at_bank) = handshake(&gov, &bank).await;
    let err = at_gov.unwrap_err();
    assert!(err.contains("not accepted by the private CA in peer.ca"), "{err}");
    assert!(at_bank.is_err());

    // A certificate of the right CA that names another node is refused too.
    let gov = link(&ca.leaf("gov"), &ca.trust(), settings("gov", Role::Gov, "bank", Role::Bank));
    let mallory = link(&ca.leaf("mallory"), &ca.trust(), settings("bank", Role::Bank, "gov", Role::Gov));
    let (at_gov, _) = handshake(&gov, &mallory).await;
    let err = at_gov.unwrap_err();
    assert!(err.contains("does not name peer.name 'bank'"), "{err}");
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let (gov_id, gov_fp) = tls_identity("gov");
    let (_, bank_fp) = tls_identity("bank");
    let gov = link(&gov_id, &PeerTrust::Pinned(bank_fp), settings("gov", Role::Gov, "bank", Role::Bank));
    let prov = rustls::crypto::ring::default_provider();
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(prov.clone()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedVerifier::new(gov_fp, &prov)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let client_cfg =
        quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap()));
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = gov.local_addr().unwrap();
    let server = async {
        let incoming = gov.accept().await.unwrap();
        gov.handshake(incoming).await.map_err(|e| format!("{e:#}"))
    };
    let client = async {
        let conn = ep.connect_with(client_cfg, addr, "gov").unwrap().await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(b"hello?").await?;
        let mut buf = [0u8; 1];
        recv.read_exact(&mut buf).await?;
        anyhow::Ok(())
    };
    let (at_server, at_client) = tokio::join!(server, client);
    let err = at_server.unwrap_err();
    assert!(err.contains("peer sent no certificates"), "{err}");
    assert!(at_client.is_err(), "the client must not get a working connection");
}

#[tokio::test]
async fn wrong_role_is_refused_naming_the_role() {
    let (gov_id, gov_fp) = tls_identity("gov");
    let (bank_id, bank_fp) = tls_identity("bank");
    let gov = link(&gov_id, &PeerTrust::Pinned(bank_fp), settings("gov", Role::Gov, "bank", Role::Bank));
    // The bank's certificate is right, but its hello claims the gov role.
    let bank = link(&bank_id, &PeerTrust::Pinned(gov_fp), settings("bank", Role::Gov, "gov", Role::Gov));
    let (at_gov, at_bank) = handshake(&gov, &bank).await;
    let err = at_gov.unwrap_err();
    assert!(err.contains("role mismatch: peer 'bank' claims role 'gov'"), "{err}");
    assert!(err.contains("(peer.role)"), "{err}");
    let err = at_bank.unwrap_err();
    assert!(err.contains("role mismatch"), "the refused side learns why: {err}");
}

#[tokio::test]
async fn wrong_protocol_version_is_refused() {
    let (gov_id, gov_fp) = tls_identity("gov");
    let (bank_id, bank_fp) = tls_identity("bank");
    let gov = link(&gov_id, &PeerTrust::Pinned(bank_fp), settings("gov", Role::Gov, "bank", Role::Bank));
    let mut s = settings("bank", Role::Bank, "gov", Role::Gov);
    s.me.version += 1;
    let bank = link(&bank_id, &PeerTrust::Pinned(gov_fp), s);
    let (at_gov, at_bank) = handshake(&gov, &bank).await;
    let err = at_gov.unwrap_err();
    assert!(err.contains("protocol version mismatch"), "{err}");
    assert!(at_bank.unwrap_err().contains("protocol version mismatch"));
}

/// Endpoints and connections that must outlive a test's streams.
#[allow(dead_code)]
struct Keep(Vec<node::transport::Link>, Vec<node::transport::PeerConnection>);

/// Opens a job stream on a fresh pinned connection; returns (dialler stream, acceptor stream).
async fn stream_pair() -> ((quinn::SendStream, quinn::RecvStream), (quinn::SendStream, quinn::RecvStream), Keep) {
    let (gov_id, gov_fp) = tls_identity("gov");
    let (bank_id, bank_fp) = tls_identity("bank");
    let gov = link(&gov_id, &PeerTrust::Pinned(bank_fp), settings("gov", Role::Gov, "bank", Role::Bank));
    let bank = link(&bank_id, &PeerTrust::Pinned(gov_fp), settings("bank", Role::Bank, "gov", Role::Gov));
    let (at_gov, at_bank) = handshake(&gov, &bank).await;
    let (at_gov, at_bank) = (at_gov.unwrap(), at_bank.unwrap());
    let mut opened = at_bank.connection.open_bi().await.unwrap();
    // A stream becomes visible to the peer once data is sent on it.
    opened.0.write_all(&Frame { kind: "job.open".into(), payload: vec![] }.header()).await.unwrap();
    let mut accepted = at_gov.connection.accept_bi().await.unwrap();
    let mut prefix = [0u8; 13];
    accepted.1.read_exact(&mut prefix).await.unwrap();
    (opened, accepted, Keep(vec![gov, bank], vec![at_gov, at_bank]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_messages_cross_quic_and_both_views_agree() {
    let (opened, accepted, _links) = stream_pair().await;
    let handle = tokio::runtime::Handle::current();
    let (_stop_tx, stop) = tokio::sync::watch::channel(None);
    let bank = QuicTransport::new(opened.0, opened.1, handle.clone(), Duration::from_secs(5), stop.clone());
    let gov = QuicTransport::new(accepted.0, accepted.1, handle, Duration::from_secs(5), stop);
    let data: Vec<u64> = (0..300_000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
    let sum: u64 = data.iter().fold(0u64, |a, v| a.wrapping_add(*v));
    let sent = data.clone();
    let bank_side = tokio::task::spawn_blocking(move || {
        let mut ch = Channel::new(Box::new(bank), Role::Bank);
        ch.send_u64s("vec", &sent).unwrap();
        let echoed: u64 = ch.recv("sum").unwrap();
        (echoed, ch.shared_view())
    });
    let gov_side = tokio::task::spawn_blocking(move || {
        let mut ch = Channel::new(Box::new(gov), Role::Gov);
        let v = ch.recv_u64s("vec", 300_000).unwrap();
        ch.send("sum", &v.iter().fold(0u64, |a, x| a.wrapping_add(*x))).unwrap();
        (v, ch.shared_view())
    });
    let ((echoed, bank_view), (received, gov_view)) = (bank_side.await.unwrap(), gov_side.await.unwrap());
    assert_eq!(received, data);
    assert_eq!(echoed, sum);
    assert_eq!(bank_view, gov_view);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_header_is_refused_before_the_payload_is_read() {
    let (mut opened, accepted, _links) = stream_pair().await;
    let (_stop_tx, stop) = tokio::sync::watch::channel(None);
    let mut gov =
        QuicTransport::new(accepted.0, accepted.1, tokio::runtime::Handle::current(), Duration::from_secs(30), stop);
    // A header claiming 100 MiB and no payload behind it: waiting for the payload would hit the
    // 30 s read timeout, so only a check on the header itself can produce FrameTooLarge here.
    let hostile = Frame { kind: "psi.points".into(), payload: vec![] };
    let mut header = hostile.header();
    header[..4].copy_from_slice(&(100u32 << 20).to_le_bytes());
    opened.0.write_all(&header).await.unwrap();
    let err = tokio::task::spawn_blocking(move || gov.recv(1 << 20)).await.unwrap().unwrap_err();
    match err {
        Error::Transport(TransportError::FrameTooLarge { len, limit, .. }) => {
            assert_eq!((len, limit), (100 << 20, 1 << 20))
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
}
