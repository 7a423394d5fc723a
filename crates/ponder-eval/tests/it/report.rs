//! Reports: HTML with inline SVG plots, Markdown and CSV; the page rendered by headless
//! Chromium (Debian `chromium`) and its screenshot checked for visible plots.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::time::{Duration, Instant};

use ponder_eval::analysis::RunData;
use ponder_eval::report::{self, ReportOptions};

use super::*;

/// A finished run on two levels with sampling strategies at three budgets and two seeds.
fn stored_run(store: &mut Store, seed_base: u64) -> i64 {
    let mut problems = ponder_eval::load("arith:1:6", 0).unwrap().problems;
    problems.extend(ponder_eval::load("arith:2:6", 0).unwrap().problems);
    let d = ponder_eval::load("arith:1:1", 0).unwrap();
    let g = generator(&problems);
    let c = config(&d, &problems, &["single", "sc", "bon", "weighted-bon"], &[2, 4, 8], &[seed_base, seed_base + 1]);
    let run = store.create_run(&c.to_json(), "test", "arith:1+2", 135_000_000, &problems).unwrap();
    assert_eq!(run_units(store, run, &c, &d, &problems, &g, None), Finish::Done);
    store.set_status(run, "complete").unwrap();
    run
}

fn write_report(dir: &Path) -> PathBuf {
    write_report_of(dir).0
}

/// The report's page, and the runs it reports.
fn write_report_of(dir: &Path) -> (PathBuf, [RunData; 2]) {
    let mut store = Store::in_memory().unwrap();
    let a = stored_run(&mut store, 0);
    let b = stored_run(&mut store, 10);
    let runs = [RunData::load(&store, a).unwrap(), RunData::load(&store, b).unwrap()];
    let out = report::write(&runs, dir, &ReportOptions::default()).unwrap();
    (out.html, runs)
}

#[test]
fn report_has_plots_tables_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let (html_path, runs) = write_report_of(dir.path());
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for id in ["plot-cost", "plot-coverage", "plot-levels", "plot-risk"] {
        assert!(html.contains(&format!("<figure id=\"{id}\"><svg")), "no inline SVG for {id}");
    }
    let plot_svg = format!("<svg width=\"{}\"", report::plots::WIDTH);
    assert_eq!(html.matches(&plot_svg).count(), 4, "four plots");
    assert!(html.contains("<ul class=\"legend\">"), "legends");
    assert!(!html.contains("<script") && !html.contains("src=\"http"), "self-contained");
    for needle in ["coverage pass@k", "maj@k", "best-of-k", "weighted@k", "level 1", "level 2", "run 1", "run 2", "tokens/pass", "FLOPs/pass", "verifier gap"] {
        assert!(html.contains(needle), "missing {needle:?}");
    }
    // The SVG carries the series as paths and the labels as text.
    assert!(html.matches("<polyline").count() + html.matches("<path").count() >= 10);
    assert!(html.contains(">sc<") || html.contains(">run 1: sc<"), "legend labels");

    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("| strategy | budget |") && md.contains("### Curves"), "{md}");
    let summary = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
    // 2 runs × (single@1 + 3 strategies × 3 budgets) rows, plus the header.
    assert_eq!(summary.lines().count(), 1 + 2 * 10, "{summary}");
    assert!(summary.starts_with("run,strategy,budget,"));
    let curves = std::fs::read_to_string(dir.path().join("curves.csv")).unwrap();
    assert!(curves.lines().any(|l| l.contains(",bon@8,") && l.contains(",8,weighted,")), "{curves}");
    let levels = std::fs::read_to_string(dir.path().join("levels.csv")).unwrap();
    assert!(levels.lines().any(|l| l.contains(",sc,8,2,")), "{levels}");
    // Coverage at every k of each pool (bon@4 over two seeds: 8 samples), not only powers of two.
    let coverage = std::fs::read_to_string(dir.path().join("coverage.csv")).unwrap();
    let ks: Vec<&str> = coverage.lines().filter(|l| l.starts_with("1,bon@4,")).map(|l| l.split(',').nth(3).unwrap()).collect();
    assert_eq!(ks, ["1", "2", "3", "4", "5", "6", "7", "8"], "{coverage}");
    assert!(md.contains("Coverage law (Brown et al. 2024)") || md.contains("Coverage law: not fitted"), "{md}");
    assert!(html.contains("Coverage law"), "the law's line is in the page");
    // Risk–coverage for the strategies that vote (sc, weighted-bon), none for the others;
    // its last point answers every unit that had an answer.
    let risk = std::fs::read_to_string(dir.path().join("risk.csv")).unwrap();
    assert!(risk.starts_with("run,strategy,budget,units,threshold,coverage,accuracy,answered,correct\n"), "{risk}");
    let strategies: std::collections::BTreeSet<&str> = risk.lines().skip(1).map(|l| l.split(',').nth(1).unwrap()).collect();
    assert_eq!(strategies, ["sc", "weighted-bon"].into(), "{risk}");
    let sc8: Vec<Vec<&str>> = risk.lines().filter(|l| l.starts_with("1,sc,8,")).map(|l| l.split(',').collect()).collect();
    let last = sc8.last().expect("sc@8 has a curve");
    let answered = runs[0].outcomes.iter().filter(|o| o.key.strategy == "sc" && o.key.budget == 8 && o.answer.is_some()).count();
    assert_eq!(last[7].parse::<usize>().unwrap(), answered, "{risk}");
    assert!(sc8.windows(2).all(|w| w[0][4].parse::<f64>().unwrap() > w[1][4].parse::<f64>().unwrap()), "thresholds fall: {risk}");
    assert!(md.contains("### Abstention by confidence"), "{md}");
}

#[test]
fn a_run_without_outcomes_has_no_report() {
    let mut store = Store::in_memory().unwrap();
    let (d, problems) = dataset(2);
    let run = store.create_run(&config(&d, &problems, &["sc"], &[2], &[0]).to_json(), "m", "d", 0, &problems).unwrap();
    let data = RunData::load(&store, run).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = report::write(&[data], dir.path(), &ReportOptions::default()).unwrap_err().to_string();
    assert!(err.contains("no stored outcomes"), "{err}");
}

/// The Chromium binary, if installed (`.ci/run` installs Debian's `chromium`).
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
    })
}

/// What headless Chromium did: exit status, stdout, stderr.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs headless Chromium with `args` on `url`, killing it after 90 seconds. Output goes
/// to files (a pipe nobody reads would fill up and stall the browser).
fn run_chromium(bin: &Path, args: &[&str], url: &str) -> Ran {
    let profile = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (profile.path().join("stdout"), profile.path().join("stderr"));
    let mut child = Command::new(bin)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--mute-audio"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Ran { ok: status.success(), stdout: read(&out_path), stderr: read(&err_path) }
}

/// Decodes an 8-bit RGB or RGBA PNG into RGB pixels (enough for Chromium's screenshots).
fn decode_png(bytes: &[u8]) -> (usize, usize, Vec<[u8; 3]>) {
    use std::io::Read;
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut at, mut width, mut height, mut channels) = (8, 0, 0, 0);
    let mut idat = Vec::new();
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = &bytes[at + 4..at + 8];
        let data = &bytes[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                assert_eq!(data[8], 8, "bit depth");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("colour type {other}"),
                };
                assert_eq!(data[12], 0, "interlaced");
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).unwrap();
    let stride = width * channels;
    assert_eq!(raw.len(), height * (stride + 1), "image data size");
    let mut out = vec![0u8; height * stride];
    for y in 0..height {
        let filter = raw[y * (stride + 1)];
        let line = &raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)];
        for x in 0..stride {
            let a = if x >= channels { out[y * stride + x - channels] } else { 0 };
            let b = if y > 0 { out[(y - 1) * stride + x] } else { 0 };
            let c = if x >= channels && y > 0 { out[(y - 1) * stride + x - channels] } else { 0 };
            let v = match filter {
                0 => line[x],
                1 => line[x].wrapping_add(a),
                2 => line[x].wrapping_add(b),
                3 => line[x].wrapping_add(((u16::from(a) + u16::from(b)) / 2) as u8),
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = ((p - i16::from(a)).abs(), (p - i16::from(b)).abs(), (p - i16::from(c)).abs());
                    let pred = if pa <= pb && pa <= pc { a } else if pb <= pc { b } else { c };
                    line[x].wrapping_add(pred)
                }
                other => panic!("PNG filter {other}"),
            };
            out[y * stride + x] = v;
        }
    }
    let pixels = out.chunks(channels).map(|p| [p[0], p[1], p[2]]).collect();
    (width, height, pixels)
}

#[test]
fn report_renders_in_headless_chromium_with_visible_plots() {
    let Some(bin) = chromium() else {
        eprintln!("SKIPPED report_renders_in_headless_chromium_with_visible_plots: chromium is not installed (apt-get install chromium; .ci/run does)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let html = write_report(dir.path());
    let url = format!("file://{}", html.display());

    // The browser parses the page into a DOM with the three plots.
    let dom = run_chromium(&bin, &["--dump-dom"], &url);
    assert!(dom.ok, "chromium --dump-dom failed: {}", dom.stderr);
    let dom_text = &dom.stdout;
    let plot_svg = format!("<svg width=\"{}\"", report::plots::WIDTH);
    assert_eq!(dom_text.matches(&plot_svg).count(), 4, "the browser's DOM lacks the plots");
    assert!(dom_text.contains("ponder report: run 1"));
    let log = &dom.stderr;
    assert!(!log.contains("Uncaught") && !log.contains("CONSOLE"), "page errors: {log}");

    // A screenshot of the top of the page shows the first plot's lines in colour.
    let shot = dir.path().join("report.png");
    let out = run_chromium(&bin, &[&format!("--screenshot={}", shot.display()), "--window-size=1280,1800"], &url);
    assert!(out.ok && shot.is_file(), "no screenshot: {}", out.stderr);
    let (w, h, pixels) = decode_png(&std::fs::read(&shot).unwrap());
    assert_eq!((w, h), (1280, 1800));
    let non_white = pixels.iter().filter(|p| p.iter().any(|&c| c < 235)).count();
    assert!(non_white > pixels.len() / 100, "the page looks blank: {non_white} of {} pixels not white", pixels.len());
    // The plot palette's colours, drawn by the SVG lines and markers: several are visible.
    let near = |p: &[u8; 3], c: [u8; 3]| p.iter().zip(c).all(|(&x, y)| (i16::from(x) - i16::from(y)).abs() <= 12);
    let palette = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189]];
    let seen: Vec<usize> = palette.iter().map(|&c| pixels.iter().filter(|p| near(p, c)).count()).collect();
    // Keep the screenshot and the page to look at: PONDER_REPORT_SCREENSHOT=/tmp/report.png.
    if let Some(keep) = std::env::var_os("PONDER_REPORT_SCREENSHOT") {
        std::fs::copy(&shot, &keep).unwrap();
        std::fs::copy(&html, Path::new(&keep).with_extension("html")).unwrap();
    }
    assert!(seen.iter().filter(|&&n| n > 150).count() >= 3, "the plots' colours are barely visible: {seen:?} pixels");
}
