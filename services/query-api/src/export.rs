//! Exports (导出): the ledger, rates, rankings and complaint notices as CSV or XLSX, with the same
//! parameters, role scope and phone masking as their JSON routes (each route's module parses and
//! queries once for both; this module only writes rows). See docs/api.md.
//!
//! - **CSV** (RFC 4180, UTF-8 with a BOM so Excel reads Chinese): rows go from the producer (for
//!   the ledger, the Postgres row stream) through a bounded channel into the response body, a
//!   chunk at a time, so memory stays constant whatever the row count.
//! - **XLSX**: rust_xlsxwriter in constant-memory mode on a blocking thread: each row is written to
//!   the worksheet's temporary file as it arrives (nothing is kept per row), and at the end the
//!   workbook is zipped straight into the response body (its zip writer streams; no second file).
//!   A sheet holds 1,048,576 rows (one is the header); further rows continue on a new sheet
//!   ("台账 2", …) with the header again.
//!
//! Cells that begin with `=`, `+`, `-`, `@`, a tab or a carriage return get a leading `'` in CSV,
//! so a spreadsheet never evaluates them as formulas (CSV injection). XLSX text cells are stored as
//! strings, which spreadsheets never evaluate, so they are written unchanged.

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use linkage_http::error::ApiError;
use tokio::sync::mpsc;

use crate::params::Params;

/// The query parameters every export takes besides its JSON route's.
pub const EXPORT_PARAMS: &[&str] = &["format", "lang"];

/// The JSON route's parameters plus [`EXPORT_PARAMS`].
pub fn params_with_export(json_params: &[&'static str]) -> Vec<&'static str> {
    json_params.iter().chain(EXPORT_PARAMS).copied().collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    fn parse(v: &str) -> Result<Self, &'static str> {
        match v {
            "csv" => Ok(Self::Csv),
            "xlsx" => Ok(Self::Xlsx),
            _ => Err("expected csv or xlsx"),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
        }
    }
}

/// The language of the column headers (and the sheet name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    fn parse(v: &str) -> Result<Self, &'static str> {
        match v {
            "zh-CN" | "zh" => Ok(Self::Zh),
            "en" => Ok(Self::En),
            _ => Err("expected zh-CN or en"),
        }
    }

    /// The preferred of Chinese and English in an `Accept-Language` header (highest `q`, the
    /// first on a tie); Chinese when neither is named.
    fn from_accept_language(header: Option<&str>) -> Self {
        let mut best: Option<(f32, Self)> = None;
        for part in header.unwrap_or("").split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag == "en" || tag.starts_with("en-") {
                Self::En
            } else if tag == "zh" || tag.starts_with("zh-") {
                Self::Zh
            } else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Self::Zh, |(_, l)| l)
    }
}

/// What an export request asks for besides its rows.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions {
    pub format: Format,
    pub lang: Lang,
}

impl ExportOptions {
    /// `format` (default csv) and `lang` (default: `Accept-Language`, else zh-CN).
    pub fn parse(p: &Params, headers: &HeaderMap) -> Result<Self, ApiError> {
        let format = p.get("format", Format::parse)?.unwrap_or(Format::Csv);
        let lang = match p.get("lang", Lang::parse)? {
            Some(l) => l,
            None => Lang::from_accept_language(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok()),
            ),
        };
        Ok(Self { format, lang })
    }
}

/// A column of an export: its key (the JSON field it comes from) and its header in each language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub key: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
}

impl Column {
    pub const fn new(key: &'static str, zh: &'static str, en: &'static str) -> Self {
        Self { key, zh, en }
    }

    fn label(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::Zh => self.zh,
            Lang::En => self.en,
        }
    }
}

/// One export's table: its name (file name and sheet name) and columns.
#[derive(Debug)]
pub struct Table {
    /// File name stem, e.g. `ledger` → `ledger-2026-11-23.csv`.
    pub name: &'static str,
    pub sheet_zh: &'static str,
    pub sheet_en: &'static str,
    pub columns: &'static [Column],
}

/// One cell's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Int(i64),
    Number(f64),
    Bool(bool),
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Self {
        Self::Text(s.into())
    }

    pub fn opt_text<T: AsRef<str>>(s: Option<T>) -> Self {
        s.map_or(Self::Empty, |s| Self::Text(s.as_ref().to_owned()))
    }

    pub fn number(n: Option<f64>) -> Self {
        n.map_or(Self::Empty, Self::Number)
    }

    pub fn opt_bool(b: Option<bool>) -> Self {
        b.map_or(Self::Empty, Self::Bool)
    }

    /// An instant as Beijing time, `YYYY-MM-DD HH:MM:SS` (what a reader of the 台账 expects).
    pub fn instant(t: Option<DateTime<Utc>>) -> Self {
        t.map_or(Self::Empty, |t| {
            Self::Text(
                t.with_timezone(&linkage_domain::calendar::TZ)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string(),
            )
        })
    }

    /// The cell as CSV text: numbers in Rust's shortest round-trip form (`+ 0.0` turns a
    /// computed −0 into 0 here and in XLSX), text guarded against formula injection.
    fn csv_text(&self) -> String {
        match self {
            Self::Empty => String::new(),
            Self::Text(s) => guard_formula(s),
            Self::Int(n) => n.to_string(),
            Self::Number(n) => (n + 0.0).to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }
}

/// A leading `'` for text a spreadsheet would take for a formula (OWASP's CSV injection rule).
pub fn guard_formula(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_owned(),
    }
}

/// One row, or the error that ended the rows.
pub type RowResult = Result<Vec<Cell>, ApiError>;

/// How many rows wait between the producer and the writer (bounds memory).
const ROW_BUFFER: usize = 256;
/// Body chunks are sent once this many bytes are ready.
const CHUNK: usize = 64 * 1024;

/// The sending half given to a row producer; dropping it ends the rows.
pub type RowSender = mpsc::Sender<RowResult>;

/// A channel for rows: the producer sends into the first, the export reads the second.
pub fn row_channel() -> (RowSender, mpsc::Receiver<RowResult>) {
    mpsc::channel(ROW_BUFFER)
}

/// Rows already in memory (the metric exports: a line per department, channel or unit).
pub fn rows_in_memory(rows: Vec<Vec<Cell>>) -> mpsc::Receiver<RowResult> {
    let (tx, rx) = mpsc::channel(rows.len().max(1));
    for row in rows {
        // Cannot fail: the channel has room for every row and the receiver is alive.
        let _ = tx.try_send(Ok(row));
    }
    rx
}

/// The export's response: waits for the first row (or the end), so a failure before any row is
/// still a proper problem+json answer; after that, a failure aborts the body (the client sees an
/// incomplete transfer, never a silently short file).
pub async fn respond(
    table: &'static Table,
    options: ExportOptions,
    mut rows: mpsc::Receiver<RowResult>,
) -> Result<Response, ApiError> {
    let first = match rows.recv().await {
        Some(Err(e)) => return Err(e),
        Some(Ok(row)) => Some(row),
        None => None,
    };
    let (body_tx, body_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    match options.format {
        Format::Csv => {
            tokio::spawn(write_csv(table, options.lang, first, rows, body_tx));
        }
        Format::Xlsx => {
            tokio::task::spawn_blocking(move || {
                write_xlsx(table, options.lang, first, rows, body_tx)
            });
        }
    }
    let body = Body::from_stream(futures::stream::unfold(body_rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    let date = Utc::now()
        .with_timezone(&linkage_domain::calendar::TZ)
        .format("%Y-%m-%d");
    let disposition = format!(
        "attachment; filename=\"{}-{date}.{}\"",
        table.name,
        options.format.extension()
    );
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(options.format.content_type()),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("a file name header: {e}")))?,
    );
    Ok(response)
}

fn body_error(e: &ApiError) -> std::io::Error {
    std::io::Error::other(format!("the export stopped: {e}"))
}

async fn write_csv(
    table: &'static Table,
    lang: Lang,
    first: Option<Vec<Cell>>,
    mut rows: mpsc::Receiver<RowResult>,
    body: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    // The BOM tells Excel the file is UTF-8.
    let mut builder = csv::WriterBuilder::new();
    builder.terminator(csv::Terminator::CRLF);
    let mut out = builder.from_writer(b"\xEF\xBB\xBF".to_vec());
    let header: Vec<&str> = table.columns.iter().map(|c| c.label(lang)).collect();
    let mut row = first;
    let mut wrote_header = false;
    loop {
        let result = if wrote_header {
            Ok(())
        } else {
            wrote_header = true;
            out.write_record(&header)
        };
        let result = result.and_then(|()| match &row {
            Some(cells) => out.write_record(cells.iter().map(Cell::csv_text)),
            None => Ok(()),
        });
        if let Err(e) = result {
            let _ = body
                .send(Err(std::io::Error::other(format!("writing CSV: {e}"))))
                .await;
            return;
        }
        let done = row.is_none();
        if done || out.get_ref().len() >= CHUNK {
            let full = std::mem::replace(&mut out, builder.from_writer(Vec::with_capacity(CHUNK)));
            let chunk = match full.into_inner() {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = body
                        .send(Err(std::io::Error::other(format!("writing CSV: {e}"))))
                        .await;
                    return;
                }
            };
            if !chunk.is_empty() && body.send(Ok(Bytes::from(chunk))).await.is_err() {
                return; // The client went away.
            }
        }
        if done {
            return;
        }
        row = match rows.recv().await {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                let _ = body.send(Err(body_error(&e))).await;
                return;
            }
            None => None,
        };
    }
}

/// Writes into the response body from a blocking thread, a chunk at a time.
struct BodyWriter {
    buffer: Vec<u8>,
    body: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl BodyWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buffer));
        self.body.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Rows per sheet besides the header (XLSX's limit is 1,048,576 rows).
pub const XLSX_ROWS_PER_SHEET: u32 = 1_048_575;

fn write_xlsx(
    table: &'static Table,
    lang: Lang,
    first: Option<Vec<Cell>>,
    mut rows: mpsc::Receiver<RowResult>,
    body: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let fail = |body: &mpsc::Sender<_>, e: String| {
        let _ = body.blocking_send(Err(std::io::Error::other(e)));
    };
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let sheet_name = match lang {
        Lang::Zh => table.sheet_zh,
        Lang::En => table.sheet_en,
    };
    let mut sheets = 0u32;
    let mut row_in_sheet = 0u32;
    let mut pending = first;
    loop {
        // A new sheet (with the header) first, and whenever one is full.
        if sheets == 0 || (pending.is_some() && row_in_sheet >= XLSX_ROWS_PER_SHEET) {
            sheets += 1;
            let name = if sheets == 1 {
                sheet_name.to_owned()
            } else {
                format!("{sheet_name} {sheets}")
            };
            let result = workbook
                .add_worksheet_with_constant_memory()
                .and_then(|sheet| {
                    sheet.set_name(&name)?;
                    for (col, c) in table.columns.iter().enumerate() {
                        sheet.write_string_with_format(0, col as u16, c.label(lang), &bold)?;
                    }
                    Ok(())
                });
            if let Err(e) = result {
                fail(&body, format!("writing XLSX: {e}"));
                return;
            }
            row_in_sheet = 0;
        }
        let Some(cells) = pending.take() else { break };
        if body.is_closed() {
            return; // The client went away: stop reading rows (the producer stops too).
        }
        row_in_sheet += 1;
        let Some(sheet) = workbook.worksheets_mut().last_mut() else {
            return;
        };
        for (col, cell) in cells.into_iter().enumerate() {
            let col = col as u16;
            let written = match cell {
                Cell::Empty => Ok(&mut *sheet),
                Cell::Text(s) => sheet.write_string(row_in_sheet, col, s),
                Cell::Int(n) => sheet.write_number(row_in_sheet, col, n as f64),
                Cell::Number(n) => sheet.write_number(row_in_sheet, col, n + 0.0),
                Cell::Bool(b) => sheet.write_boolean(row_in_sheet, col, b),
            };
            if let Err(e) = written {
                fail(&body, format!("writing XLSX: {e}"));
                return;
            }
        }
        pending = match rows.blocking_recv() {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                fail(&body, format!("the export stopped: {e}"));
                return;
            }
            None => None,
        };
    }
    let mut writer = BodyWriter {
        buffer: Vec::with_capacity(CHUNK),
        body: body.clone(),
    };
    if let Err(e) = workbook
        .save_to_writer(&mut writer)
        .map_err(|e| e.to_string())
        .and_then(|()| writer.flush().map_err(|e| e.to_string()))
    {
        fail(&body, format!("writing XLSX: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_api_md_has_every_column_table() {
        let doc = include_str!("../../../docs/api.md");
        for (route, columns) in [
            ("/api/v1/ledger/export", crate::ledger::EXPORT_COLUMNS),
            ("/api/v1/rates/export", crate::rates::EXPORT_COLUMNS),
            ("/api/v1/rankings/export", crate::rankings::EXPORT_COLUMNS),
            (
                "/api/v1/complaint-notices/export",
                crate::complaints::EXPORT_COLUMNS,
            ),
        ] {
            let at = doc
                .find(&format!("### `{route}`"))
                .unwrap_or_else(|| panic!("docs/api.md has no section for {route}"));
            let section = &doc[at..];
            let section = &section[..section[4..].find("\n### ").map_or(section.len(), |e| e + 4)];
            let rows: Vec<&str> = section.lines().filter(|l| l.starts_with("| `")).collect();
            let expected: Vec<String> = columns
                .iter()
                .map(|c| format!("| `{}` | {} | {} |", c.key, c.zh, c.en))
                .collect();
            assert_eq!(
                rows, expected,
                "{route}: docs/api.md's table differs from the code"
            );
        }
    }

    #[test]
    fn formulas_are_defused() {
        assert_eq!(guard_formula("=1+1"), "'=1+1");
        assert_eq!(guard_formula("+86 138"), "'+86 138");
        assert_eq!(guard_formula("-2"), "'-2");
        assert_eq!(guard_formula("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(guard_formula("\tx"), "'\tx");
        assert_eq!(guard_formula("市场监管局"), "市场监管局");
        assert_eq!(guard_formula(""), "");
    }

    #[test]
    fn accept_language_picks_the_preferred_of_zh_and_en() {
        assert_eq!(Lang::from_accept_language(None), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(
            Lang::from_accept_language(Some("fr, zh-CN;q=0.5, en;q=0.8")),
            Lang::En
        );
        assert_eq!(
            Lang::from_accept_language(Some("zh-CN,zh;q=0.9,en;q=0.8")),
            Lang::Zh
        );
        assert_eq!(Lang::from_accept_language(Some("de")), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("en;q=0")), Lang::Zh);
    }
}
