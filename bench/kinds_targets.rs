//! Loopback targets for `bench/kinds.sh`, one per probe kind: an HTTP
//! responder (200 "ok" to every request), a TCP acceptor (accepts and
//! closes), an authoritative DNS server answering `bench.example. A
//! 10.0.0.7` over UDP (and TCP, same port), and a tonic-health gRPC server
//! whose overall service ("") is SERVING. Not part of lookout.
//!
//! All listen on 127.0.0.1 ephemeral ports, printed as one JSON line on
//! stdout: `{"http":P,"tcp":P,"dns":P,"grpc":P}`. Runs until killed, and
//! exits by itself after 10 minutes regardless.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::proto::rr::rdata::{A, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

/// The most this process lives, whatever happens to the script.
const LIFETIME: Duration = Duration::from_secs(600);

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("a valid name")
}

/// `example.` with an SOA and one A record, `bench.example.`.
fn zone() -> InMemoryZoneHandler {
    let origin = name("example.");
    let mut zone = InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let soa = SOA::new(
        name("ns1.example."),
        name("hostmaster.example."),
        1,
        7200,
        900,
        1209600,
        60,
    );
    for r in [
        Record::from_rdata(origin, 300, RData::SOA(soa)),
        Record::from_rdata(name("bench.example."), 300, RData::A(A::new(10, 0, 0, 7))),
    ] {
        assert!(zone.upsert_mut(r, 1), "the zone takes its records");
    }
    zone
}

/// UDP and TCP on one port; the server stops when dropped.
async fn start_dns() -> (SocketAddr, Server<Catalog>) {
    let mut catalog = Catalog::new();
    let handler: Arc<dyn ZoneHandler> = Arc::new(zone());
    catalog.upsert(LowerName::new(&name("example.")), vec![handler]);
    let mut server = Server::new(catalog);
    for _ in 0..20 {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("a TCP port");
        let addr = tcp.local_addr().expect("its address");
        let Ok(udp) = UdpSocket::bind(addr).await else {
            continue;
        };
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64 * 1024);
        return (addr, server);
    }
    panic!("no port free for both UDP and TCP");
}

async fn start_http() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let port = listener.local_addr().expect("its address").port();
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// Accepts and closes at once.
async fn start_tcp() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let port = listener.local_addr().expect("its address").port();
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((conn, _)) => drop(conn),
                // EMFILE and the like: back off a little, do not spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    });
    port
}

/// tonic-health: the reporter marks "" SERVING; it must stay alive.
async fn start_grpc() -> (u16, tonic_health::server::HealthReporter) {
    let (reporter, service) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let port = listener.local_addr().expect("its address").port();
    let incoming = futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(tcp, _)| tcp);
        Some((accepted, listener))
    });
    let router = tonic::transport::Server::builder().add_service(service);
    tokio::spawn(router.serve_with_incoming(incoming));
    (port, reporter)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let http = start_http().await;
    let tcp = start_tcp().await;
    let (dns, _dns_server) = start_dns().await;
    let (grpc, _reporter) = start_grpc().await;
    println!(
        "{{\"http\":{http},\"tcp\":{tcp},\"dns\":{},\"grpc\":{grpc}}}",
        dns.port()
    );
    tokio::select! {
        _ = tokio::time::sleep(LIFETIME) => eprintln!("bench-kinds-targets: 10 minutes up, exiting"),
        _ = tokio::signal::ctrl_c() => {}
    }
}
