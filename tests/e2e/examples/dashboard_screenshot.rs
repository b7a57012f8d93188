//! A full-page PNG of a running dashboard, for the docs (docs/dashboard.md):
//!
//! ```sh
//! cargo run -p linkage-e2e --example dashboard_screenshot -- \
//!     "http://127.0.0.1:8081/?month=2026-11#token=$(make -s token ROLE=analyst)" \
//!     docs/images/dashboard.png [en]
//! ```
//!
//! Waits until every section has loaded (and fails on a section's error or a console error),
//! then shoots at 1440 CSS pixels wide. `en` switches the page to English first.

use anyhow::{Context, bail};
use linkage_e2e::browser::Browser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(out)) = (args.next(), args.next()) else {
        bail!("usage: dashboard_screenshot <dashboard URL with #token=…> <out.png> [en]");
    };
    let english = args.next().as_deref() == Some("en");
    let browser = Browser::launch().await?;
    let page = browser.new_page().await?;
    page.goto(&url).await?;
    let ready = r#"(() => {
        const ids = ['freshness', 'rates', 'ranking', 'alerts', 'ledger'];
        const sections = ids.map((id) => document.getElementById(id + '-section'));
        const bad = sections.find((s) => s.dataset.state === 'error');
        if (bad) return 'error in ' + bad.id + ': ' + bad.querySelector('.error').textContent;
        return sections.every((s) => s.dataset.state === 'ready') ? 'ready' : '';
    })()"#;
    let state = page.wait_for(ready, "the dashboard to load").await?;
    if state != "ready" {
        bail!("{state}");
    }
    let lang = page.eval("document.documentElement.lang").await?;
    if english != (lang == "en") {
        page.eval("document.getElementById('lang-toggle').click()")
            .await?;
    }
    page.screenshot(1440, std::path::Path::new(&out))
        .await
        .with_context(|| format!("writing {out}"))?;
    let errors = browser.errors();
    browser.close().await;
    if !errors.is_empty() {
        bail!("the page logged errors: {errors:#?}");
    }
    println!("{out}");
    Ok(())
}
