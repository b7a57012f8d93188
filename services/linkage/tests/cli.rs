//! The `linkage` binary's offline commands.

use std::process::Command;

fn linkage(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_linkage"))
        .args(args)
        .env_remove("LINKAGE_CALENDAR")
        .output()
        .expect("run linkage");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sla_deadline_explains_working_days_across_national_day() {
    // Wed 2026-09-30 10:00 local + 1 working day: Oct 1–7 are holidays, so the deadline is the
    // end of Thu Oct 8 (00:00 Oct 9 local = 16:00 Oct 8 UTC).
    let (ok, out, err) = linkage(&[
        "sla",
        "deadline",
        "--from",
        "2026-09-30T10:00:00+08:00",
        "--working-days",
        "1",
        "--calendar",
        "official",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("deadline: 2026-10-08T16:00:00Z"), "{out}");
    assert!(out.contains("that day is 2026-10-08 Thu"), "{out}");
    assert!(out.contains("calendar: cn-official-2020-2026"), "{out}");
}

#[test]
fn sla_deadline_in_hours_and_on_the_weekday_calendar() {
    let (ok, out, _) = linkage(&[
        "sla",
        "deadline",
        "--from",
        "2026-09-30T10:00:00+08:00",
        "--hours",
        "2",
    ]);
    assert!(ok);
    assert!(out.contains("deadline: 2026-09-30T04:00:00Z"), "{out}");
    // Mon–Fri only: the next working day after Wed 09-30 is Thu 10-01.
    let (ok, out, _) = linkage(&[
        "sla",
        "deadline",
        "--from",
        "2026-09-30T10:00:00+08:00",
        "--working-days",
        "1",
        "--calendar",
        "weekdays",
    ]);
    assert!(ok);
    assert!(out.contains("deadline: 2026-10-01T16:00:00Z"), "{out}");
    assert!(out.contains("calendar: weekdays"), "{out}");
}

#[test]
fn sla_deadline_outside_the_calendar_names_the_missing_year() {
    let (ok, _, err) = linkage(&[
        "sla",
        "deadline",
        "--from",
        "2026-12-30T10:00:00+08:00",
        "--working-days",
        "5",
    ]);
    assert!(!ok);
    assert!(err.contains("2027"), "{err}");
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let (ok, _, err) = linkage(&["sla", "deadline", "--from", "yesterday", "--hours", "2"]);
    assert!(!ok);
    assert!(err.contains("--from"), "{err}");
    let (ok, _, err) = linkage(&["sla", "deadline", "--from", "2026-09-30T10:00:00+08:00"]);
    assert!(!ok);
    assert!(err.contains("required"), "{err}");
    let (ok, _, err) = linkage(&[
        "token",
        "issue",
        "--role",
        "handler",
        "--jwt-secret",
        "0123456789abcdef0123456789abcdef",
    ]);
    assert!(!ok);
    assert!(err.contains("department"), "{err}");
}

#[tokio::test]
async fn sla_deadline_uses_the_stored_calendar_and_names_its_version() {
    // A fresh district: the rules stream is seeded with the official years (calendar-v7), so the
    // National Day example gives the same deadline, now with the stored version.
    let db = linkage_store::testing::TestDatabase::new()
        .await
        .expect("test database");
    let out = Command::new(env!("CARGO_BIN_EXE_linkage"))
        .args([
            "sla",
            "deadline",
            "--from",
            "2024-09-27T10:00:00+08:00",
            "--working-days",
            "10",
        ])
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run linkage");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Fri 2024-09-27 + 10 working days across National Day: Sun 09-29 and Sat 10-12 are
    // adjusted working days → 24:00 Wed 2024-10-16 local.
    assert!(
        stdout.contains("deadline: 2024-10-16T16:00:00Z"),
        "{stdout}"
    );
    assert!(stdout.contains("calendar: calendar-v7"), "{stdout}");
}
