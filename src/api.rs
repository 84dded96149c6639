//! The HTTP API (`api.listen`): `/metrics`, `/health` and `/stats`, served by one small
//! synchronous server thread (the agent has no async runtime).

use crate::metrics::View;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use tiny_http::{Header, Method, Request, Response, Server};
use tracing::{debug, warn};

/// A running API server.
pub struct Api {
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
}

impl Api {
    /// Binds `listen` (an address in use is an error for the caller to report) and serves.
    pub fn start(listen: &str, view: View) -> io::Result<Api> {
        let server = Server::http(listen).map_err(|e| {
            io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("cannot listen on {listen}: {e}"),
            )
        })?;
        let server = Arc::new(server);
        let s = server.clone();
        let thread = std::thread::Builder::new()
            .name("api".into())
            .spawn(move || {
                for req in s.incoming_requests() {
                    respond(req, &view);
                }
            })?;
        Ok(Api {
            server,
            thread: Some(thread),
        })
    }

    /// Stops serving.
    pub fn stop(mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn reply(req: Request, status: u16, content_type: &str, body: String) {
    let mut resp = Response::from_string(body).with_status_code(status);
    if let Some(h) = header("Content-Type", content_type) {
        resp = resp.with_header(h);
    }
    if let Err(e) = req.respond(resp) {
        debug!(error = %e, "api client went away");
    }
}

fn respond(req: Request, view: &View) {
    if *req.method() != Method::Get && *req.method() != Method::Head {
        return reply(req, 405, "text/plain", "only GET\n".into());
    }
    let path = req.url().split('?').next().unwrap_or("").to_string();
    match path.as_str() {
        "/metrics" => match view.prometheus() {
            Ok(text) => reply(req, 200, "text/plain; version=0.0.4", text),
            Err(e) => {
                warn!(error = %e, "cannot build metrics");
                reply(req, 500, "text/plain", format!("metrics error: {e}\n"))
            }
        },
        "/health" => match view.health() {
            Ok(()) => reply(req, 200, "application/json", "{\"status\":\"ok\"}\n".into()),
            Err(reasons) => {
                let body = serde_json::json!({"status": "failing", "reasons": reasons});
                reply(req, 503, "application/json", format!("{body}\n"))
            }
        },
        "/stats" => {
            let body = serde_json::to_string(&view.stats_doc()).unwrap_or_else(|_| "{}".into());
            reply(req, 200, "application/json", body + "\n")
        }
        _ => reply(
            req,
            404,
            "text/plain",
            "not found; try /metrics, /health or /stats\n".into(),
        ),
    }
}
