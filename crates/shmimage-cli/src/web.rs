//! `shmimage web`: watch streams live in a browser (crates/shmimage-web).

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[derive(Debug, Args)]
#[command(after_help = "\
Prints the URL to open on standard output (with the access token when there
is one). Each stream is read by one reader while at least one page watches
it, however many tabs are open. On an address other than loopback a random
token is required (Jupyter style): requests without it get 403.

Examples:
  shmimage web /dev/shm/stream.shm
  shmimage web /dev/shm/a.shm /dev/shm/b.shm --max-fps 30
  shmimage web /dev/shm --listen 0.0.0.0:8420 --quality 70")]
pub struct WebArgs {
    /// Stream files (they need not exist yet), or directories whose stream
    /// files are offered (listed again as the page asks).
    #[arg(required = true, value_name = "STREAM")]
    streams: Vec<PathBuf>,
    /// Address and port to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8420", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// JPEG quality, 1 to 100.
    #[arg(long, default_value_t = shmimage_web::DEFAULT_QUALITY, value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: u8,
    /// Most frames per second sent per stream [default: every frame].
    #[arg(long, value_name = "FPS")]
    max_fps: Option<f64>,
    /// Use this access token instead of a random one (also on loopback, where
    /// none is required otherwise); 8 or more of A-Z a-z 0-9 - _.
    #[arg(long)]
    token: Option<String>,
    /// (for the Python helper) stop when standard input closes, i.e. when the
    /// process that started this one exits.
    #[arg(long, hide = true)]
    exit_with_stdin: bool,
}

pub fn run(a: WebArgs) -> Result<()> {
    let config = shmimage_web::Config {
        streams: a.streams,
        listen: a.listen,
        token: a.token,
        quality: a.quality,
        max_fps: a.max_fps,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let server = shmimage_web::WebServer::bind(config).await?;
        let n = server.catalog().catalog().list().len();
        eprintln!("shmimage web: {n} stream(s); open this URL (Ctrl-C stops):");
        if let Ok(addr) = server.local_addr() {
            if !addr.ip().is_loopback() {
                eprintln!("(listening on {addr}: from another machine, put this machine's name or address in the URL)");
            }
        }
        println!("{}", server.url());
        server.serve(stopped(a.exit_with_stdin)).await?;
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM, or when standard input closes if asked.
async fn stopped(with_stdin: bool) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    if with_stdin {
        std::thread::spawn(move || {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
    }
    let stdin_closed = async move {
        if rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
        _ = stdin_closed => {}
    }
}
