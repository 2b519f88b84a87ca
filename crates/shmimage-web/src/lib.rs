//! shmimage-web: watch streams live in a browser.
//!
//! An HTTP server (axum) serves one self-contained page and, per watching
//! tab, a WebSocket carrying JPEG frames. Each stream has one reader, running
//! only while some tab watches; each frame is encoded once and shared by all
//! tabs through a watch channel, so a slow tab skips to the newest frame.
//! See docs/web.md.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = shmimage_web::Config::new(vec!["/dev/shm/stream.shm".into()]);
//! let server = shmimage_web::WebServer::bind(config).await?;
//! println!("open {}", server.url());
//! server.serve(std::future::pending()).await?;
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

mod auth;
mod catalog;
mod convert;
mod encode;
mod hub;
mod server;
mod source;

pub use catalog::{Catalog, Entry};
pub use hub::{Hub, HubStats};
pub use server::{Handle, WebError, WebServer};

/// What to serve and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// Stream files, or directories whose stream files are served.
    pub streams: Vec<PathBuf>,
    /// Where to listen; loopback by default.
    pub listen: SocketAddr,
    /// The access token; made at random when `None` and `listen` is not
    /// loopback.
    pub token: Option<String>,
    /// JPEG quality, 1..=100.
    pub quality: u8,
    /// Most frames per second sent per stream; `None` = as many as come.
    pub max_fps: Option<f64>,
}

/// Default JPEG quality: sharp text, ~80 KB per 1080p frame.
pub const DEFAULT_QUALITY: u8 = 80;
/// Default port.
pub const DEFAULT_PORT: u16 = 8420;

impl Config {
    /// Serve `streams` on 127.0.0.1:8420 with the defaults.
    pub fn new(streams: Vec<PathBuf>) -> Config {
        Config {
            streams,
            listen: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), DEFAULT_PORT),
            token: None,
            quality: DEFAULT_QUALITY,
            max_fps: None,
        }
    }
}
