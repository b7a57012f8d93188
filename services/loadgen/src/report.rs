//! The run's report: every part measured by `bench/run.sh` (one JSON file each) merged into one
//! JSON document and rendered as Markdown, with each design target judged against its figure.
//! A part that is missing is reported as "not yet available", never estimated.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

/// The parts `bench/run.sh` writes, by file stem.
pub const PARTS: &[&str] = &[
    "meta",
    "pgbench",
    "commands_max",
    "commands_half",
    "jetstream_raw",
    "relay",
    "seed",
    "rebuild",
    "scale_ledger",
    "queries",
    "audit_export",
    "audit_verify",
    "rss",
];

/// Reads `<dir>/<part>.json` for every part there is.
pub fn load_parts(dir: &Path) -> Result<Value> {
    let mut all = Map::new();
    for part in PARTS {
        let path = dir.join(format!("{part}.json"));
        if !path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        all.insert((*part).to_owned(), value);
    }
    Ok(Value::Object(all))
}

/// One design target and how the run did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub figure: String,
    pub target: String,
    /// `None` when the run could not measure it.
    pub measured: Option<String>,
    pub met: Option<bool>,
}

fn f(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Events per second of a `{events, elapsed: {secs, nanos}}` or `{events, elapsed_secs}` part.
fn events_per_sec(part: &Value) -> Option<f64> {
    if let Some(rate) = f(&part["events_per_sec"]) {
        return Some(rate);
    }
    let events = f(&part["events"])?;
    let secs = f(&part["elapsed_secs"])
        .or_else(|| Some(f(&part["elapsed"]["secs"])? + f(&part["elapsed"]["nanos"])? / 1e9))?;
    (secs > 0.0).then(|| events / secs)
}

pub fn verdicts(all: &Value) -> Vec<Verdict> {
    let mut v = Vec::new();
    let ceiling = f(&all["pgbench"]["tps"]);
    let max = &all["commands_max"];
    let half = &all["commands_half"];
    let measured = |x: Option<f64>, unit: &str| x.map(|x| format!("{x:.0} {unit}"));
    let ratio = match (f(&max["commands_per_sec"]), ceiling) {
        (Some(c), Some(t)) if t > 0.0 => Some(c / t),
        _ => None,
    };
    v.push(Verdict {
        figure: "commands/s at max throughput ÷ pgbench ceiling".into(),
        target: "≥ 0.7×".into(),
        measured: ratio.map(|r| {
            format!(
                "{r:.2}× ({:.0} / {:.0} per s)",
                f(&max["commands_per_sec"]).unwrap_or(0.0),
                ceiling.unwrap_or(0.0)
            )
        }),
        met: ratio.map(|r| r >= 0.7),
    });
    let p99 = f(&max["latency"]["p99_ms"]);
    v.push(Verdict {
        figure: "command p99 at max throughput".into(),
        target: "≤ 50 ms".into(),
        measured: p99.map(|x| format!("{x:.1} ms")),
        met: p99.map(|x| x <= 50.0),
    });
    let lag = f(&half["lag"]["p99_ms"]).filter(|_| f(&half["lag"]["count"]).unwrap_or(0.0) > 0.0);
    let stale = f(&half["lag_stale"]).unwrap_or(0.0);
    v.push(Verdict {
        figure: "command → query API lag p99 at half load".into(),
        target: "≤ 200 ms".into(),
        measured: lag.map(|x| {
            if stale > 0.0 {
                format!("{x:.0} ms ({stale:.0} probes still stale after 5 s)")
            } else {
                format!("{x:.0} ms")
            }
        }),
        met: lag.map(|x| x <= 200.0 && stale == 0.0),
    });
    let rebuild = events_per_sec(&all["rebuild"]);
    v.push(Verdict {
        figure: "ledger rebuild".into(),
        target: "≥ 100 000 events/s".into(),
        measured: measured(rebuild, "events/s"),
        met: rebuild.map(|x| x >= 100_000.0),
    });
    for (part, name) in [
        ("audit_export", "audit export"),
        ("audit_verify", "audit verify"),
    ] {
        let rate = events_per_sec(&all[part]);
        v.push(Verdict {
            figure: name.into(),
            target: "≥ 300 000 events/s".into(),
            measured: measured(rate, "events/s"),
            met: rate.map(|x| x >= 300_000.0),
        });
    }
    let by_kind = &all["queries"]["by_kind"];
    let worst_ledger = by_kind.as_object().and_then(|kinds| {
        kinds
            .iter()
            .filter(|(k, _)| k.starts_with("ledger") || k.starts_with("appeal"))
            .filter_map(|(_, l)| f(&l["p99_ms"]))
            .reduce(f64::max)
    });
    v.push(Verdict {
        figure: format!(
            "ledger queries p99 (worst kind) over {}",
            query_appeals(all)
        ),
        target: "≤ 20 ms".into(),
        measured: worst_ledger.map(|x| format!("{x:.1} ms")),
        met: worst_ledger.map(|x| x <= 20.0),
    });
    for kind in ["rates", "rankings"] {
        let p99 = f(&by_kind[kind]["p99_ms"]);
        v.push(Verdict {
            figure: format!("{kind} query p99"),
            target: "≤ 20 ms".into(),
            measured: p99.map(|x| format!("{x:.1} ms")),
            met: p99.map(|x| x <= 20.0),
        });
    }
    v
}

/// What the queries ran over: the seeded appeals, or the ledger `scale-ledger` copied them to.
fn query_appeals(all: &Value) -> String {
    let scaled = &all["scale_ledger"];
    if scaled["appeals"].is_number() {
        format!(
            "{} appeals ({} projected, copied ×{})",
            num(&scaled["appeals"]),
            num(&scaled["original_appeals"]),
            num(&(scaled["copies"].as_f64().unwrap_or(0.0) + 1.0).into()),
        )
    } else if all["seed"]["appeals"].is_number() {
        format!("{} seeded appeals", num(&all["seed"]["appeals"]))
    } else {
        "the seeded appeals".into()
    }
}

/// The merged JSON: every part plus the verdicts.
pub fn document(all: &Value) -> Value {
    let mut doc = all.clone();
    doc["verdicts"] = json!(verdicts(all));
    doc
}

fn ms(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{x:.1}"))
        .unwrap_or_else(|| "–".into())
}

fn num(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{x:.0}"))
        .unwrap_or_else(|| "–".into())
}

fn latency_cells(l: &Value) -> String {
    format!(
        "{} | {} | {} | {} | {}",
        ms(&l["p50_ms"]),
        ms(&l["p99_ms"]),
        ms(&l["p999_ms"]),
        ms(&l["max_ms"]),
        num(&l["count"])
    )
}

const NOT_YET: &str = "not yet available";

pub fn markdown(all: &Value) -> String {
    let mut md = String::new();
    let meta = &all["meta"];
    let _ = writeln!(
        md,
        "# Linkage benchmark, {}\n",
        meta["date"].as_str().unwrap_or("(no date)")
    );
    let _ = writeln!(
        md,
        "Commit `{}`. Machine: {}. {}\n",
        meta["commit"].as_str().unwrap_or("?"),
        meta["machine"].as_str().unwrap_or("?"),
        meta["settings"].as_str().unwrap_or("")
    );

    md.push_str("## Targets (docs: DESIGN performance targets)\n\n| figure | target | measured | |\n|---|---|---|---|\n");
    for v in verdicts(all) {
        let mark = match v.met {
            Some(true) => "met",
            Some(false) => "**not met**",
            None => "",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {mark} |",
            v.figure,
            v.target,
            v.measured.as_deref().unwrap_or(NOT_YET)
        );
    }

    md.push_str("\n## Commands over HTTP\n\n| run | commands/s | p50 ms | p99 ms | p99.9 ms | max ms | measured | errors | lag p50 ms | lag p99 ms | lag probes (stale) |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (part, name) in [
        ("commands_max", "max (closed loop)"),
        ("commands_half", "half (open loop)"),
    ] {
        let r = &all[part];
        if r.is_null() {
            let _ = writeln!(md, "| {name} | {NOT_YET} |||||||||");
            continue;
        }
        let clients_or_rate = match (r["clients"].as_u64(), r["target_rate"].as_f64()) {
            (Some(c), _) => format!("{c} clients"),
            (_, Some(rate)) => format!("{rate:.0}/s scheduled"),
            _ => String::new(),
        };
        let errors: u64 = r["errors"]
            .as_object()
            .map(|e| e.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        let _ = writeln!(
            md,
            "| {name}, {clients_or_rate} | {} | {} | {errors} | {} | {} | {} ({}) |",
            num(&r["commands_per_sec"]),
            latency_cells(&r["latency"]),
            ms(&r["lag"]["p50_ms"]),
            ms(&r["lag"]["p99_ms"]),
            num(&r["lag_probes"]),
            num(&r["lag_stale"]),
        );
    }
    if let Some(by) = all["commands_max"]["latency_by_command"].as_object() {
        md.push_str("\nAt max throughput, by command:\n\n| command | p50 ms | p99 ms | p99.9 ms | max ms | count |\n|---|---|---|---|---|---|\n");
        for (name, l) in by {
            let _ = writeln!(md, "| {name} | {} |", latency_cells(l));
        }
    }
    for part in ["commands_max", "commands_half"] {
        if let Some(errors) = all[part]["errors"].as_object().filter(|e| !e.is_empty()) {
            let list: Vec<String> = errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            let _ = writeln!(md, "\nErrors in {part}: {}", list.join(", "));
        }
    }

    let pg = &all["pgbench"];
    md.push_str("\n## Ceilings\n\n| ceiling | rate | p50 ms | p99 ms | p99.9 ms | max ms | count |\n|---|---|---|---|---|---|---|\n");
    if pg.is_null() {
        let _ = writeln!(md, "| pgbench append | {NOT_YET} ||||||");
    } else {
        let _ = writeln!(
            md,
            "| pgbench append transaction, {} clients | {} tx/s | {} |",
            num(&pg["clients"]),
            num(&pg["tps"]),
            latency_cells(&pg["latency"])
        );
    }
    let raw = &all["jetstream_raw"];
    let relay = &all["relay"];
    let _ = writeln!(
        md,
        "| JetStream publish-with-ack, {} B messages, batches of {} | {} msg/s | | | | | {} |",
        num(&raw["message_bytes"]),
        num(&raw["batch"]),
        num(&raw["messages_per_sec"]),
        num(&raw["messages"]),
    );
    let relay_ratio = match (f(&relay["events_per_sec"]), f(&raw["messages_per_sec"])) {
        (Some(r), Some(c)) if c > 0.0 => format!(" ({:.2}× the raw publish rate)", r / c),
        _ => String::new(),
    };
    let _ = writeln!(
        md,
        "| relay draining a backlog (mean envelope {} B) | {} events/s{relay_ratio} | | | | | {} |",
        num(&relay["mean_envelope_bytes"]),
        num(&relay["events_per_sec"]),
        num(&relay["events_published"]),
    );

    let seed = &all["seed"];
    md.push_str("\n## History, rebuild, audit\n\n| step | events | seconds | events/s |\n|---|---|---|---|\n");
    let _ = writeln!(
        md,
        "| seed {} appeals (domain + hash + COPY) | {} | {} | {} |",
        num(&seed["appeals"]),
        num(&seed["events"]),
        ms(&seed["elapsed_secs"]),
        num(&seed["events_per_sec"])
    );
    for (part, name) in [
        ("rebuild", "projections rebuild ledger"),
        ("audit_export", "audit export"),
        ("audit_verify", "audit verify"),
    ] {
        let p = &all[part];
        match events_per_sec(p) {
            Some(rate) => {
                let secs = f(&p["elapsed_secs"])
                    .or_else(|| Some(f(&p["elapsed"]["secs"])? + f(&p["elapsed"]["nanos"])? / 1e9));
                let _ = writeln!(
                    md,
                    "| {name} | {} | {} | {rate:.0} |",
                    num(&p["events"]),
                    secs.map(|s| format!("{s:.1}")).unwrap_or_default()
                );
            }
            None => {
                let _ = writeln!(md, "| {name} | {NOT_YET} | | |");
            }
        }
    }

    let q = &all["queries"];
    let _ = write!(md, "\n## Queries over {}\n\n", query_appeals(all));
    md.push_str(
        "| query | p50 ms | p99 ms | p99.9 ms | max ms | count |\n|---|---|---|---|---|---|\n",
    );
    if let Some(by) = q["by_kind"].as_object() {
        for (name, l) in by {
            let _ = writeln!(md, "| {name} | {} |", latency_cells(l));
        }
        let _ = writeln!(
            md,
            "| all, {} clients, {} queries/s | {} |",
            num(&q["clients"]),
            num(&q["queries_per_sec"]),
            latency_cells(&q["latency"])
        );
    } else {
        let _ = writeln!(md, "| ledger | {NOT_YET} |||||");
    }
    for kind in ["rates", "rankings"] {
        if q["by_kind"][kind].is_null() {
            let _ = writeln!(md, "| {kind} | {NOT_YET} |||||");
        }
    }

    md.push_str("\n## Peak RSS by role (VmHWM)\n\n| process | MiB |\n|---|---|\n");
    if let Some(rss) = all["rss"].as_object() {
        for (role, kib) in rss {
            let mib = kib.as_f64().map(|k| format!("{:.0}", k / 1024.0));
            let _ = writeln!(md, "| {role} | {} |", mib.as_deref().unwrap_or("–"));
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "pgbench": {"tps": 2000.0, "clients": 16, "latency": {"p99_ms": 12.0}},
            "commands_max": {"commands_per_sec": 1500.0, "latency": {"p99_ms": 40.0},
                             "errors": {}},
            "commands_half": {"lag": {"p99_ms": 120.0, "count": 300}, "lag_stale": 0},
            "rebuild": {"events": 1_000_000, "elapsed": {"secs": 20, "nanos": 0}},
            "queries": {"by_kind": {"ledger_latest": {"p99_ms": 5.0},
                                    "appeal_by_tracking_number": {"p99_ms": 25.0}}},
        })
    }

    #[test]
    fn each_target_is_judged_from_its_figure() {
        let v = verdicts(&sample());
        let by = |name: &str| {
            v.iter()
                .find(|v| v.figure.starts_with(name))
                .unwrap()
                .clone()
        };
        assert_eq!(by("commands/s").met, Some(true)); // 0.75×
        assert_eq!(by("command p99").met, Some(true));
        assert_eq!(by("command → query").met, Some(true));
        let rebuild = by("ledger rebuild");
        assert_eq!(rebuild.met, Some(false)); // 50 000 events/s
        assert_eq!(rebuild.measured.as_deref(), Some("50000 events/s"));
        assert_eq!(by("ledger queries").met, Some(false)); // the worst kind, 25 ms
    }

    #[test]
    fn the_query_figure_names_the_ledger_it_ran_over() {
        let mut all = sample();
        all["seed"] = json!({"appeals": 130_000});
        let figure = |all: &Value| {
            verdicts(all)
                .into_iter()
                .find(|v| v.figure.starts_with("ledger queries"))
                .unwrap()
                .figure
        };
        assert!(figure(&all).ends_with("over 130000 seeded appeals"));
        all["scale_ledger"] =
            json!({"appeals": 1_040_000, "original_appeals": 130_000, "copies": 7});
        assert!(figure(&all).ends_with("over 1040000 appeals (130000 projected, copied ×8)"));
        assert!(markdown(&all).contains("## Queries over 1040000 appeals"));
    }

    #[test]
    fn missing_figures_are_not_yet_available_never_guessed() {
        let v = verdicts(&sample());
        for name in [
            "audit export",
            "audit verify",
            "rates query p99",
            "rankings query p99",
        ] {
            let verdict = v.iter().find(|v| v.figure == name).unwrap();
            assert_eq!(verdict.measured, None, "{name}");
            assert_eq!(verdict.met, None, "{name}");
        }
        let md = markdown(&sample());
        assert!(md.contains("| audit export | ≥ 300 000 events/s | not yet available |"));
    }

    #[test]
    fn stale_lag_probes_fail_the_lag_target() {
        let mut all = sample();
        all["commands_half"]["lag_stale"] = json!(3);
        let v = verdicts(&all);
        let lag = v
            .iter()
            .find(|v| v.figure.starts_with("command → query"))
            .unwrap();
        assert_eq!(lag.met, Some(false));
    }
}
