//! The analysts' dashboard (看板): plain HTML, CSS and JavaScript modules plus the vendored
//! ECharts, embedded in the binary and served at `/` by the query API. The page holds no data:
//! it reads the query API's JSON routes in the browser with the analyst's bearer token, so these
//! routes need no token themselves (docs/dashboard.md).
//!
//! Every file is answered with its content type, an `ETag` (a digest of the bytes) and
//! `Cache-Control: no-cache`: the browser keeps a copy but asks again each time, and a
//! matching `If-None-Match` gets `304 Not Modified` without the body, so a new binary is never
//! hidden behind a stale cache.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use linkage_http::error::ApiError;
use sha2::{Digest, Sha256};

/// One embedded file, served at `/assets/<path>` (and `index.html` at `/`).
#[derive(Debug)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// The same bytes gzipped (`<path>.gz`, made by `make dashboard-vendor`), for the large
    /// vendored library: sent to browsers that accept gzip.
    pub gzip: Option<&'static [u8]>,
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("../assets/", $path)),
            gzip: None,
        }
    };
    ($path:literal, $content_type:expr, gzip) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("../assets/", $path)),
            gzip: Some(include_bytes!(concat!("../assets/", $path, ".gz"))),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file of the dashboard. `make dashboard-vendor` refreshes `vendor/echarts/`.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("format.js", JS),
    asset!("i18n.js", JS),
    asset!("style.css", CSS),
    asset!("favicon.svg", SVG),
    asset!("vendor/echarts/echarts.esm.min.js", JS, gzip),
    asset!("vendor/echarts/LICENSE", TEXT),
    asset!("vendor/echarts/LICENSE-d3", TEXT),
    asset!("vendor/echarts/NOTICE", TEXT),
    asset!("vendor/echarts/VERSION", TEXT),
];

/// The page may load only its own files and call only its own origin: no CDN, no external
/// font. Inline styles stay allowed because ECharts' tooltips are HTML with `style`
/// attributes; scripts are never inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
     font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The dashboard's routes: `GET /` (the page) and `GET /assets/{path}` (its files). They read
/// no state, so they merge into any router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
}

/// The embedded file at `path` (relative to `assets/`), if there is one.
pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The quoted strong entity tag of each asset, in [`ASSETS`]' order, computed once. The gzipped
/// variant is other bytes, so it has its own tag (`…-gz`).
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| hex::encode(Sha256::digest(a.body))[..32].to_owned())
            .collect()
    })
}

/// Whether the request's `Accept-Encoding` lists gzip (without `q=0`).
fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

async fn index(headers: HeaderMap) -> Response {
    serve(
        find("index.html").expect("index.html is embedded"),
        &headers,
    )
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    // index.html is the page at `/`; under /assets it would be a second address for it.
    match find(&path).filter(|a| a.path != "index.html") {
        Some(a) => Ok(serve(a, &headers)),
        None => Err(ApiError::NotFound(format!(
            "the dashboard has no file {path:?}"
        ))),
    }
}

fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let i = ASSETS
        .iter()
        .position(|a| std::ptr::eq(a, asset))
        .expect("an asset of ASSETS");
    let gzip = asset.gzip.filter(|_| accepts_gzip(request));
    let etag = match gzip {
        Some(_) => format!("\"{}-gz\"", etags()[i]),
        None => format!("\"{}\"", etags()[i]),
    };
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    let etag = &etag;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(etag).expect("hex is a valid header"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if asset.gzip.is_some() {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if asset.content_type == HTML {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        // The token may arrive in the URL fragment; never send the address on.
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if let Some(gzipped) = gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return (StatusCode::OK, headers, gzipped).into_response();
    }
    (StatusCode::OK, headers, asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        get_with(path, if_none_match, None).await
    }

    async fn get_with(
        path: &str,
        if_none_match: Option<&str>,
        accept_encoding: Option<&str>,
    ) -> Response {
        let mut req = Request::get(path);
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        if let Some(codings) = accept_encoding {
            req = req.header(header::ACCEPT_ENCODING, codings);
        }
        routes::<()>()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    async fn text(response: Response) -> String {
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn the_page_is_served_at_the_root_with_its_security_headers() {
        let r = get("/", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], HTML);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(
            r.headers()[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(r.headers()[header::REFERRER_POLICY], "no-referrer");
        let html = text(r).await;
        assert!(html.contains("<html lang=\"zh-CN\""), "{html}");
        assert!(html.contains("src=\"/assets/app.js\""), "{html}");
    }

    #[tokio::test]
    async fn assets_have_their_content_types_and_revalidate_by_etag() {
        for (path, content_type) in [
            ("/assets/app.js", JS),
            ("/assets/style.css", CSS),
            ("/assets/vendor/echarts/echarts.esm.min.js", JS),
            ("/assets/vendor/echarts/LICENSE", TEXT),
            ("/assets/favicon.svg", SVG),
        ] {
            let r = get(path, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(r.headers()[header::CONTENT_TYPE], content_type, "{path}");
            assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            let etag = r.headers()[header::ETAG].to_str().expect("etag").to_owned();
            assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");

            let again = get(path, Some(&etag)).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
            assert!(text(again).await.is_empty());
            let weak_in_a_list = format!("\"other\", W/{etag}");
            let again = get(path, Some(&weak_in_a_list)).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
            let stale = get(path, Some("\"0123\"")).await;
            assert_eq!(stale.status(), StatusCode::OK, "{path}");
        }
    }

    #[tokio::test]
    async fn the_chart_library_goes_gzipped_to_browsers_that_accept_it() {
        const PATH: &str = "/assets/vendor/echarts/echarts.esm.min.js";
        let plain = get_with(PATH, None, None).await;
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(plain.headers()[header::VARY], "accept-encoding");
        let plain_tag = plain.headers()[header::ETAG].clone();
        let plain_body = to_bytes(plain.into_body(), usize::MAX).await.expect("body");
        let library = find("vendor/echarts/echarts.esm.min.js").expect("embedded");
        assert!(plain_body == library.body, "the library as it is");

        let gzipped = get_with(PATH, None, Some("br, gzip;q=0.8")).await;
        assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(gzipped.headers()[header::CONTENT_TYPE], JS);
        let gz_tag = gzipped.headers()[header::ETAG]
            .to_str()
            .expect("tag")
            .to_owned();
        assert_ne!(gz_tag, plain_tag, "another representation, another tag");
        let body = to_bytes(gzipped.into_body(), usize::MAX)
            .await
            .expect("body");
        assert!(body.starts_with(&[0x1f, 0x8b]), "a gzip stream");
        assert!(body.len() < plain_body.len() / 2);
        let again = get_with(PATH, Some(&gz_tag), Some("gzip")).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

        let refused = get_with(PATH, None, Some("gzip;q=0, identity")).await;
        assert!(refused.headers().get(header::CONTENT_ENCODING).is_none());
        // Small files are never compressed.
        let page = get_with("/", None, Some("gzip")).await;
        assert!(page.headers().get(header::CONTENT_ENCODING).is_none());
    }

    /// CRC-32 (IEEE), bit by bit: enough for a test.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A `.gz` left over from another version would serve another library: its trailer (CRC-32
    /// and length of the original) must be the plain file's.
    #[test]
    fn every_gzipped_variant_is_of_the_same_bytes() {
        for a in ASSETS {
            let Some(gz) = a.gzip else { continue };
            assert!(gz.starts_with(&[0x1f, 0x8b]), "{} is not gzip", a.path);
            let trailer = &gz[gz.len() - 8..];
            let crc = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes"));
            let len = u32::from_le_bytes(trailer[4..].try_into().expect("4 bytes"));
            assert_eq!(len as usize, a.body.len(), "{}.gz: length", a.path);
            assert_eq!(crc, crc32(a.body), "{}.gz: CRC-32", a.path);
        }
    }

    #[tokio::test]
    async fn unknown_files_are_problem_json_404s() {
        for path in [
            "/assets/nope.js",
            "/assets/index.html",
            "/assets/../Cargo.toml",
            "/assets/vendor/echarts",
        ] {
            let r = get(path, None).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(
                r.headers()[header::CONTENT_TYPE],
                "application/problem+json",
                "{path}"
            );
        }
    }

    /// Every file the page or a module names is embedded (a missing one would only show in a
    /// browser).
    #[test]
    fn every_referenced_file_is_embedded() {
        let mut referenced = Vec::new();
        for a in ASSETS.iter().filter(|a| a.content_type != TEXT) {
            if a.path.starts_with("vendor/") {
                continue;
            }
            let text = std::str::from_utf8(a.body).expect("utf-8");
            for quote in ['"', '\''] {
                for part in text.split(quote) {
                    if let Some(rest) = part.strip_prefix("/assets/") {
                        referenced.push(rest.to_owned());
                    } else if let Some(rest) = part.strip_prefix("./")
                        && a.content_type == JS
                    {
                        referenced.push(rest.to_owned());
                    }
                }
            }
        }
        assert!(referenced.len() >= 5, "{referenced:?}");
        for path in &referenced {
            assert!(
                find(path).is_some(),
                "{path} is referenced but not embedded"
            );
        }
    }
}
