//! `http-fixed`: the ceiling of protoplex's HTTP stack.
//!
//! A hyper HTTP/1.1 server (keep-alive) that reads every request whole and
//! answers it with one fixed JSON body shaped like protoplex's answer to
//! `realtime:publish`: no routing, no JSON parsing, no router.

use std::convert::Infallible;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use protoplex_baselines::{ListenArgs, listen, run_main, shutdown_signal};

/// The answer to every request.
const BODY: &str = r#"{"requestId":"baseline","status":200,"error":null,"controller":"realtime","action":"publish","index":"bench","collection":"rr","volatile":null,"result":{"published":true},"node":"baseline"}"#;

/// A minimal HTTP server answering a fixed JSON body.
#[derive(Debug, Parser)]
#[command(about)]
struct Cli {
    #[command(flatten)]
    listen: ListenArgs,
}

fn main() -> ExitCode {
    run_main("http-fixed", run(Cli::parse()))
}

async fn run(cli: Cli) -> std::io::Result<()> {
    let listener = listen(&cli.listen).await?;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(answer);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), service)
                            .await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            result = &mut shutdown => return result,
        }
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the body whole, as protoplex must before it can parse it.
    let _ = request.into_body().collect().await;
    let mut response = Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
