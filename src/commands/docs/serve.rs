//! `dfpipe docs --serve`: the site's files over HTTP on localhost (GET only, no directory
//! listing, nothing outside the site's directory).

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};

/// Serves `dir` on `127.0.0.1:port` until interrupted.
pub async fn serve(dir: &Path, port: u16) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| Error::Run(format!("cannot listen on 127.0.0.1:{port}: {e}; choose another --port")))?;
    crate::outln!("serving {} on http://127.0.0.1:{port}/ (Ctrl-C stops)", dir.display());
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let dir = dir.to_path_buf();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 8192];
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buffer[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/").split(['?', '#']).next().unwrap_or("/");
            let file = if path == "/" { "index.html".to_string() } else { path.trim_start_matches('/').to_string() };
            let body = if file.contains("..") || !request.starts_with("GET ") {
                None
            } else {
                tokio::fs::read(dir.join(&file)).await.ok()
            };
            let response = match body {
                Some(body) => {
                    let kind =
                        if file.ends_with(".html") { "text/html; charset=utf-8" } else { "application/octet-stream" };
                    let mut head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    head.extend(body);
                    head
                }
                None => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&response).await;
        });
    }
}
