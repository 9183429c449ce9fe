//! TLS on the server's own port (`--tls-cert`, `--tls-key`), against a certificate each test
//! makes: frames over TLS and plain frames in one round, pages over https beside plain http, and
//! (in Chromium) a hosted question over `wss` whose round trips are the kernel's.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use arrival::protocol::{self, Frame, PROTOCOL_VERSION};
use common::webdriver::{chromium_unavailable, Driver};
use common::{server, Proc, Raw};

const KEY: &str = "tls-tests-host-key";

/// A certificate for localhost and 127.0.0.1, written to a directory of its own: (dir, cert
/// file, key file, the certificate as DER for clients to trust).
struct Certificate {
    dir: std::path::PathBuf,
    der: Vec<u8>,
}

impl Certificate {
    fn make(name: &str) -> Certificate {
        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .unwrap();
        let dir = std::env::temp_dir().join(format!("arrival-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), made.key_pair.serialize_pem()).unwrap();
        Certificate {
            dir,
            der: made.cert.der().to_vec(),
        }
    }

    fn args(&self) -> [String; 4] {
        [
            "--tls-cert".into(),
            self.dir.join("cert.pem").to_str().unwrap().into(),
            "--tls-key".into(),
            self.dir.join("key.pem").to_str().unwrap().into(),
        ]
    }

    /// A blocking TLS client to `addr` that trusts this certificate only.
    fn connect(&self, addr: &str) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone().into()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(arrival::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(common::GUARD)).unwrap();
        rustls::StreamOwned::new(conn, tcp)
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_server(cert: &Certificate, extra: &[&str]) -> (Proc, String) {
    let tls = cert.args();
    let mut args = vec!["--rounds", "0", "--web", "on", "--host-key", KEY];
    args.extend(tls.iter().map(String::as_str));
    args.extend_from_slice(extra);
    let (mut srv, addr) = server(&args);
    let players = srv.next_line();
    assert_eq!(players, format!("Players open https://{addr}/?room=quiz"));
    srv.next_line(); // the host's link
    (srv, addr)
}

/// Reads one frame from a blocking stream.
fn read_frame(s: &mut impl Read) -> Option<Frame> {
    let mut reader = protocol::FrameReader::new(futures::io::AllowStdIo::new(s));
    arrival::rt::block_on(reader.read_frame()).ok().flatten()
}

#[test]
fn frames_over_tls_and_plain_frames_play_one_round_and_pages_come_over_both() {
    let cert = Certificate::make("frames");
    let (_srv, addr) = tls_server(&cert, &[]);
    // X over TLS, Y in the clear: one round, one verdict for both.
    let mut x = cert.connect(&addr);
    x.write_all(
        &protocol::encode(&Frame::Hello {
            version: PROTOCOL_VERSION,
            room: Some("mixed".into()),
        })
        .unwrap(),
    )
    .unwrap();
    assert!(matches!(read_frame(&mut x), Some(Frame::Welcome { .. })));
    let mut y = Raw::connect(&addr);
    y.send(&Frame::Hello {
        version: PROTOCOL_VERSION,
        room: Some("mixed".into()),
    });
    assert!(matches!(y.recv(), Some(Frame::Welcome { .. })));
    assert!(matches!(read_frame(&mut x), Some(Frame::Connected { .. })));
    assert!(matches!(y.recv(), Some(Frame::Connected { .. })));
    x.write_all(
        &protocol::encode(&Frame::Message {
            name: "Tess".into(),
        })
        .unwrap(),
    )
    .unwrap();
    y.send(&Frame::Message {
        name: "Plain".into(),
    });
    let (Some(Frame::Ack { text: over_tls, .. }), Some(Frame::Ack { text: plain, .. })) =
        (read_frame(&mut x), y.recv())
    else {
        panic!("no verdicts");
    };
    assert_eq!(over_tls, plain);
    // A page over https, and the same page over http on the same port.
    let mut page = cert.connect(&addr);
    page.write_all(b"GET /?room=quiz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = page.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("arrival buzzer"));
    let plain_page = common::ws::http(&addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(plain_page.status, 200);
    // The projector's QR code names the https link.
    let mut qr = cert.connect(&addr);
    qr.write_all(b"GET /qr.svg?room=quiz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut svg = Vec::new();
    let _ = qr.read_to_end(&mut svg);
    assert!(String::from_utf8_lossy(&svg).starts_with("HTTP/1.1 200 OK"));
}

#[test]
fn a_client_that_fails_its_handshake_is_closed_and_others_play_on() {
    let cert = Certificate::make("bad");
    let (_srv, addr) = tls_server(&cert, &["--handshake-timeout", "2"]);
    // A handshake record that is no ClientHello, and one that stops half way.
    for bytes in [
        &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5][..],
        &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01][..],
    ] {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(common::GUARD)).unwrap();
        s.write_all(bytes).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        // At most a TLS alert record, never a frame or a page.
        assert!(rest.is_empty() || rest[0] == 0x15, "{rest:?}");
    }
    let mut x = cert.connect(&addr);
    x.write_all(
        &protocol::encode(&Frame::Hello {
            version: PROTOCOL_VERSION,
            room: None,
        })
        .unwrap(),
    )
    .unwrap();
    assert!(matches!(read_frame(&mut x), Some(Frame::Welcome { .. })));
}

#[test]
fn a_hosted_question_over_wss_in_chromium_times_its_player_by_the_kernel() {
    if let Some(why) = chromium_unavailable() {
        common::skip(
            "a_hosted_question_over_wss_in_chromium_times_its_player_by_the_kernel",
            &format!("the browser test {why}"),
        );
        return;
    }
    let cert = Certificate::make("chromium");
    let (srv, addr) = tls_server(&cert, &["-v"]);
    let base = format!("https://{addr}");
    let driver = Driver::start();
    let host = driver.browser(1280, 720);
    host.open(&format!("{base}/host?room=quiz#key={KEY}"));
    host.wait_text("#status", |t| t == "Waiting for players");
    let mut phones = Vec::new();
    for name in ["Ann", "Ben"] {
        let page = driver.browser(360, 640);
        page.open(&format!("{base}/?room=quiz"));
        page.type_into("#name", name);
        page.click("#join-button");
        page.wait_text("#count", |t| t.starts_with("In the room"));
        phones.push(page);
    }
    // The pages really are on https, their WebSocket on wss.
    assert_eq!(phones[0].run("return location.protocol"), "https:");
    host.wait_text("#count", |t| t.starts_with("Players: 2 players"));
    host.click("#open");
    for page in &phones {
        page.wait_for("GO", |p| {
            (p.attribute("#buzzer", "data-state") == "go").then_some(())
        });
    }
    phones[0].click("#buzzer");
    host.wait_text("#status", |t| t == "Ann is up");
    host.click("#correct");
    phones[0].wait_text("#result-title", |t| t == "Round 1");
    host.click("#finish");
    phones[0].wait_text("#status", |t| t == "Session over");
    drop((host, phones));
    srv.signal("TERM");
    let out = srv.finish();
    // The record: Ann's buzz, its round trip measured by the kernel on the TLS connection.
    let ann = out
        .stdout
        .iter()
        .find_map(|l| {
            let row = l.split_once("Session [quiz] record ")?.1;
            row.split(',')
                .nth(3)
                .filter(|&n| n == "Ann")
                .map(|_| row.to_owned())
        })
        .unwrap_or_else(|| panic!("no record of Ann: {:?}", out.stdout));
    let fields: Vec<&str> = ann.split(',').collect();
    assert_eq!(fields[9], "kernel", "{ann}");
    assert_eq!(fields[10], "correct", "{ann}");
    println!("a hosted question over wss in Chromium: {ann}");
}
