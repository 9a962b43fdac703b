//! The `protoplex` binary: configuration, start-up, and graceful shutdown on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

const BINARY: &str = env!("CARGO_BIN_EXE_protoplex");

fn protoplex(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(BINARY);
    command.args(args).env_remove("PROTOPLEX_CONFIG");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run protoplex")
}

#[test]
fn print_config_shows_the_effective_configuration() {
    let output = protoplex(
        &["--print-config", "--port", "8000"],
        &[("PROTOPLEX_LIMITS__CONCURRENT_REQUESTS", "12")],
    );
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).expect("utf-8");
    assert!(text.contains("max_request_size = 1048576"), "{text}");
    assert!(text.contains("concurrent_requests = 12"), "{text}");
    assert!(text.contains("port = 8000"), "{text}");
}

#[test]
fn a_bad_configuration_exits_with_code_2_and_a_message() {
    let path = std::env::temp_dir().join(format!("protoplex-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "[limits]\nconcurrent_requests = \"lots\"\n").expect("write config");
    let output = protoplex(&["--config", path.to_str().expect("utf-8 path")], &[]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("concurrent_requests"), "{stderr}");

    let output = protoplex(&[], &[("PROTOPLEX_NO_SUCH__KEY", "1")]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("no_such"));

    let output = protoplex(&["--config", "/nonexistent/protoplex.toml"], &[]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[cfg(all(unix, feature = "websocket", feature = "http"))]
#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_exits_0() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("address").port()
    };
    let mut args = vec![
        "--bind".to_owned(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
    ];
    if cfg!(feature = "mqtt") {
        // Any free port: 1883 may be taken on the machine running the tests.
        args.extend(["--mqtt-port".to_owned(), "0".into()]);
    }
    let mut child = tokio::process::Command::new(BINARY)
        .args(&args)
        .env_remove("PROTOPLEX_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start protoplex");

    // Wait until it accepts WebSocket clients.
    let url = format!("ws://127.0.0.1:{port}/");
    let mut socket = None;
    for _ in 0..200 {
        if let Ok((stream, _)) = tokio_tungstenite::connect_async(&url).await {
            socket = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut socket = socket.expect("protoplex accepted a WebSocket client");

    let pid = child.id().expect("pid").to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());

    let close = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = socket.next().await {
            if let Ok(Message::Close(frame)) = message {
                return frame;
            }
        }
        None
    })
    .await
    .expect("closed in time")
    .expect("a close frame");
    assert_eq!(u16::from(close.code), 1001);

    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exited in time")
        .expect("exit status");
    assert!(status.success(), "{status:?}");
}
