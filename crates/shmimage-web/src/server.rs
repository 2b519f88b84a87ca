//! The HTTP side: the page, the stream list, one WebSocket per watching tab.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::auth;
use crate::catalog::Catalog;
use crate::hub::Update;
use crate::Config;

/// The page, with its script and style inline: nothing is fetched from
/// elsewhere.
const PAGE: &str = include_str!("page.html");

/// Frames sent to a tab and not yet acknowledged as drawn. One: the next
/// frame sent is the newest when the tab is ready for it. Two (overlapping
/// a transfer with the previous decode) measured worse on a busy 2-core
/// machine: 21 vs 55 frames/s at 720p, p50 latency 59 vs 9 ms, because two
/// decodes then compete for the same cores (docs/web.md).
const IN_FLIGHT: usize = 1;

#[derive(Debug)]
struct App {
    catalog: Catalog,
    token: Option<String>,
}

/// A bound server, ready to serve.
#[derive(Debug)]
pub struct WebServer {
    listener: TcpListener,
    app: Arc<App>,
    url: String,
}

/// A setting or socket that keeps the server from starting.
#[derive(Debug)]
pub struct WebError(String);

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WebError {}

impl WebServer {
    /// Check `config`, bind its address and get ready to serve. A token is
    /// made when none is given and the address is not loopback.
    pub async fn bind(config: Config) -> Result<WebServer, WebError> {
        if config.streams.is_empty() {
            return Err(WebError("name at least one stream file or directory".into()));
        }
        if !(1..=100).contains(&config.quality) {
            return Err(WebError(format!("--quality {} is outside 1..=100", config.quality)));
        }
        if config.max_fps.is_some_and(|f| !(f.is_finite() && f > 0.0)) {
            return Err(WebError("--max-fps must be a positive number".into()));
        }
        let token = match config.token {
            Some(t) => {
                auth::check_token_text(&t).map_err(WebError)?;
                Some(t)
            }
            None if config.listen.ip().is_loopback() => None,
            None => Some(auth::new_token().map_err(WebError)?),
        };
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                " (another program uses that port: pick another with --listen, or port 0 for a free one)"
            } else {
                ""
            };
            WebError(format!("cannot listen on {}: {e}{hint}", config.listen))
        })?;
        let addr = listener.local_addr().map_err(|e| WebError(format!("no local address: {e}")))?;
        let shown = if addr.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        } else {
            addr
        };
        let url = match &token {
            Some(t) => format!("http://{shown}/?token={t}"),
            None => format!("http://{shown}/"),
        };
        let options = crate::hub::EncodeOptions { quality: config.quality, max_fps: config.max_fps };
        let app = Arc::new(App { catalog: Catalog::new(config.streams, options), token });
        Ok(WebServer { listener, app, url })
    }

    /// The address bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The URL to open, with the token when there is one.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The token requests must carry, if any.
    pub fn token(&self) -> Option<&str> {
        self.app.token.as_deref()
    }

    /// A handle on the served streams (tests and tools read their counters).
    pub fn catalog(&self) -> Handle {
        Handle(Arc::clone(&self.app))
    }

    /// Serve until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let router = Router::new()
            .route("/", get(page))
            .route("/api/streams", get(streams))
            .route("/ws/{name}", get(watch))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(Arc::clone(&self.app), guard))
            .with_state(self.app);
        axum::serve(self.listener, router).with_graceful_shutdown(shutdown).await
    }
}

/// Read access to the served streams of a running server.
#[derive(Debug, Clone)]
pub struct Handle(Arc<App>);

impl Handle {
    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.0.catalog
    }
}

async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Some(why) = auth::refusal(app.token.as_deref(), request.uri(), request.headers()) {
        tracing::info!(uri = %request.uri().path(), why, "request refused");
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    next.run(request).await
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // The page runs its own inline script and loads nothing else.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src blob:; connect-src 'self'",
            ),
        ],
        PAGE,
    )
        .into_response()
}

async fn streams(State(app): State<Arc<App>>) -> Response {
    let list: Vec<_> = app
        .catalog
        .list()
        .into_iter()
        .map(|e| serde_json::json!({"name": e.name, "path": e.path.display().to_string()}))
        .collect();
    ([(header::CONTENT_TYPE, "application/json")], serde_json::Value::Array(list).to_string()).into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404: no such page\n").into_response()
}

async fn watch(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // The name first: an unknown stream is 404 whatever the request is.
    let Some(hub) = app.catalog.hub(&name) else {
        return (StatusCode::NOT_FOUND, "404: this server offers no stream of that name\n").into_response();
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    ws.on_upgrade(move |socket| async move {
        let subscription = hub.subscribe();
        if let Err(e) = feed(socket, subscription.rx.clone()).await {
            tracing::debug!(error = %e, "a page left");
        }
        drop(subscription);
    })
}

/// Send a tab the newest update whenever it has room, until it leaves.
async fn feed(mut socket: WebSocket, mut rx: tokio::sync::watch::Receiver<Update>) -> Result<(), axum::Error> {
    let mut in_flight = 0usize;
    let mut pending = false;
    loop {
        tokio::select! {
            changed = rx.changed(), if !pending => {
                if changed.is_err() {
                    return Ok(());
                }
                pending = true;
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(t))) if t.as_str() == "drawn" => in_flight = in_flight.saturating_sub(1),
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok(_)) => {}
            },
        }
        if pending && in_flight < IN_FLIGHT {
            pending = false;
            let update = rx.borrow_and_update().clone();
            match update {
                Update::Starting => {}
                Update::Frame(bytes) => {
                    in_flight += 1;
                    socket.send(Message::Binary(bytes)).await?;
                }
                Update::Status(text) => {
                    let msg = serde_json::json!({"status": text}).to_string();
                    socket.send(Message::Text(msg.into())).await?;
                }
            }
        }
    }
}
