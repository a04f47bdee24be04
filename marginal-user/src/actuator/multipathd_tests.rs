//! The multipathd client against in-test servers speaking libmpathcmd's framing, and that
//! framing against the real multipath-tools client where it is installed.
use std::{
    os::{
        linux::net::SocketAddrExt,
        unix::net::{SocketAddr, UnixListener},
    },
    sync::{Arc, Mutex},
    thread,
};

use super::*;

fn temp_socket(tag: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("marginal-mpd-{tag}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Accepts one connection, or panics after 10 s: a client that never connects must fail the
/// test, not hang it.
fn accept(listener: &UnixListener) -> UnixStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("no client connected: {e}"),
        }
    }
}

/// Serves `connections` connections: reads one framed command each, records it, answers with
/// `reply(command)` framed the same way.
fn serve(
    listener: UnixListener,
    connections: usize,
    reply: fn(&str) -> String,
) -> (Arc<Mutex<Vec<String>>>, thread::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let handle = thread::spawn(move || {
        for _ in 0..connections {
            let mut stream = accept(&listener);
            let deadline = Instant::now() + Duration::from_secs(5);
            let command = read_message(&mut stream, deadline).unwrap();
            let answer = reply(&command);
            log.lock().unwrap().push(command);
            stream.write_all(&encode_message(&answer)).unwrap();
        }
    });
    (seen, handle)
}

fn multipathd_like(command: &str) -> String {
    match command {
        "show daemon" => "pid 4711 idle\n".into(),
        "fail path sdb" | "reinstate path sdb" => "ok\n".into(),
        _ => "fail\n".into(),
    }
}

fn client(addresses: Vec<SocketAddress>) -> MultipathdSocket {
    MultipathdSocket::with_addresses(addresses, Duration::from_millis(1500))
}

fn sdb() -> PathRef {
    PathRef::new("sdb", (8, 16))
}

#[test]
fn framing_is_a_native_size_t_counting_the_nul() {
    let message = encode_message("fail path sdb");
    let (len, body) = message.split_at(size_of::<usize>());
    assert_eq!(usize::from_ne_bytes(len.try_into().unwrap()), 14);
    assert_eq!(body, b"fail path sdb\0");
}

#[test]
fn fails_and_reinstates_through_a_path_socket() {
    let path = temp_socket("actions");
    let (seen, server) = serve(UnixListener::bind(&path).unwrap(), 3, multipathd_like);
    let mpd = client(vec![SocketAddress::Path(path.clone())]);
    assert_eq!(mpd.probe().unwrap(), "pid 4711 idle");
    mpd.fail_path("mpatha", &sdb()).unwrap();
    mpd.reinstate_path("mpatha", &sdb()).unwrap();
    server.join().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        ["show daemon", "fail path sdb", "reinstate path sdb"]
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_fail_reply_is_an_error_naming_map_path_and_command() {
    let path = temp_socket("refused");
    let (_, server) = serve(UnixListener::bind(&path).unwrap(), 1, multipathd_like);
    let mpd = client(vec![SocketAddress::Path(path.clone())]);
    let err = mpd
        .fail_path("mpathb", &PathRef::new("sdc", (8, 32)))
        .unwrap_err();
    let text = format!("{err:#}");
    server.join().unwrap();
    assert!(text.contains("map mpathb"), "{text}");
    assert!(text.contains("sdc (8:32)"), "{text}");
    assert!(text.contains("\"fail path sdc\""), "{text}");
    assert!(text.contains("\"fail\""), "{text}");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn falls_back_from_a_silent_abstract_socket_to_the_next() {
    let name = format!("marginal-test-mpd-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let (seen, server) = serve(UnixListener::bind_addr(&addr).unwrap(), 1, multipathd_like);
    let mpd = client(vec![
        SocketAddress::Abstract(format!("{name}-nobody")),
        SocketAddress::Abstract(name),
    ]);
    mpd.reinstate_path("mpatha", &sdb()).unwrap();
    server.join().unwrap();
    assert_eq!(*seen.lock().unwrap(), ["reinstate path sdb"]);
}

#[test]
fn nobody_listening_names_every_address_tried() {
    let mpd = client(vec![
        SocketAddress::Abstract(format!("marginal-test-none-{}", std::process::id())),
        SocketAddress::Path(temp_socket("none")),
    ]);
    let text = format!("{:#}", mpd.probe().unwrap_err());
    assert!(text.contains("does not answer"), "{text}");
    assert!(text.contains("@marginal-test-none-"), "{text}");
    assert!(text.contains("marginal-mpd-none-"), "{text}");
}

#[test]
fn a_daemon_that_never_answers_times_out() {
    let path = temp_socket("silent");
    let listener = UnixListener::bind(&path).unwrap();
    let server = thread::spawn(move || {
        let stream = accept(&listener);
        thread::sleep(Duration::from_millis(1500));
        drop(stream);
    });
    let mpd = MultipathdSocket::with_addresses(
        vec![SocketAddress::Path(path.clone())],
        Duration::from_millis(300),
    );
    let started = Instant::now();
    let text = format!("{:#}", mpd.probe().unwrap_err());
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    assert!(text.contains("no reply in time"), "{text}");
    server.join().unwrap();
    std::fs::remove_file(path).unwrap();
}

#[test]
fn bad_lengths_and_cut_replies_are_errors() {
    let path = temp_socket("garbage");
    let listener = UnixListener::bind(&path).unwrap();
    let server = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        // A zero length, then a length far past libmpathcmd's limit.
        for len in [0usize, MAX_REPLY_LEN] {
            let mut stream = accept(&listener);
            read_message(&mut stream, deadline).unwrap();
            stream.write_all(&len.to_ne_bytes()).unwrap();
        }
        // A reply cut short.
        let mut stream = accept(&listener);
        read_message(&mut stream, deadline).unwrap();
        stream.write_all(&10usize.to_ne_bytes()).unwrap();
        stream.write_all(b"ok").unwrap();
    });
    let mpd = client(vec![SocketAddress::Path(path.clone())]);
    for expected in ["out of range", "out of range", "closed the connection"] {
        let text = format!("{:#}", mpd.command("show daemon").unwrap_err());
        assert!(text.contains(expected), "{text}");
    }
    server.join().unwrap();
    std::fs::remove_file(path).unwrap();
}

#[test]
fn reply_checks() {
    check_reply("fail path sdb", "ok\n").unwrap();
    assert!(check_reply("fail path sdb", "fail\n").is_err());
    assert!(check_reply("fail path sdb", "timeout\n").is_err());
    assert!(check_reply("fail path sdb", "").is_err());
}

/// Our framing against libmpathcmd itself: the real `multipathd` client (multipath-tools, if
/// installed) sends `show daemon` to a server of ours on multipathd's abstract socket and must
/// print our reply. Skipped without the binary or if a real multipathd holds the socket.
#[test]
fn real_multipathd_client_speaks_our_framing() {
    let Some(binary) = ["/usr/sbin/multipathd", "/sbin/multipathd"]
        .into_iter()
        .find(|b| std::path::Path::new(b).exists())
    else {
        eprintln!("skipped: multipath-tools is not installed");
        return;
    };
    if let Ok(reply) = MultipathdSocket::new().probe() {
        eprintln!("skipped: a real multipathd answers ({reply})");
        return;
    }
    let addr = SocketAddr::from_abstract_name(ABSTRACT_SOCKET.as_bytes()).unwrap();
    let Ok(listener) = UnixListener::bind_addr(&addr) else {
        eprintln!("skipped: {ABSTRACT_SOCKET} is taken");
        return;
    };
    let (seen, server) = serve(listener, 1, |_| "pid 4711 running\n".into());
    let output = std::process::Command::new(binary)
        .args(["show", "daemon"])
        .output()
        .unwrap();
    server.join().unwrap();
    // The CLI joins its arguments and ends the command with " \n"; the frame is what matters.
    assert_eq!(seen.lock().unwrap()[0].trim(), "show daemon");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("pid 4711 running"), "{stdout:?} {output:?}");
}
