//! A fleet (issue 15, item 6): three real llama-servers behind one gateway and behind
//! `ponder eval`. Each problem's requests land on one server, shown by that server's own
//! cache counters; one server killed mid-run costs no request and no double count: the
//! survivors' counters equal what ponder says they reported, the killed one's log (its
//! counters die with it) bounds what ponder credits it with, and its lost work is
//! `unreported`, never guessed.

use std::collections::BTreeSet;
use std::process::Command;

use ponder_core::Generator;
use ponder_http::{EndpointConfig, EndpointStats, HttpConfig, HttpGenerator};
use serde_json::{json, Value};

use super::cli::{eval, summed, text};
use super::*;
use crate::http::{question, sampling};

async fn three() -> [LlamaServer; 3] {
    [LlamaServer::start().await, LlamaServer::start().await, LlamaServer::start().await]
}

fn fleet_config(urls: &[String], retries: u32) -> HttpConfig {
    HttpConfig { endpoints: urls.iter().map(|u| EndpointConfig::new(u.clone())).collect(), retries, ..HttpConfig::default() }
}

async fn counters_of(servers: &[LlamaServer]) -> Vec<Counters> {
    futures::future::join_all(servers.iter().map(LlamaServer::counters)).await
}

/// Word problems of one shape and different numbers: distinct prompts with a shared prefix
/// (the chat template's), so only a whole-prompt cache hit tells a server has seen one.
fn questions(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("Tom has {} marbles. He finds {} more and loses {}. How many marbles does Tom have now? Answer with the number.", 11 + 7 * i, 3 + i, 2 + i % 3)).collect()
}

/// Whether the server has a slot at work.
async fn generating(server: &LlamaServer) -> bool {
    let slots: Value = reqwest::get(format!("{}/slots", server.root())).await.unwrap().json().await.unwrap();
    slots.as_array().unwrap().iter().any(|s| s["is_processing"] == true)
}

/// One gateway request; its JSON answer (200 asserted).
async fn ask(http: &reqwest::Client, front: &str, q: &str, strategy: &str, seed: u64, max_tokens: u32) -> Value {
    let body = json!({ "model": format!("{strategy}:smollm2-135m"), "messages": [{ "role": "user", "content": q }],
        "max_tokens": max_tokens, "temperature": 0.8, "seed": seed });
    let r = http.post(front).json(&body).send().await.expect("the gateway answers");
    let status = r.status();
    let v: Value = r.json().await.expect("JSON");
    assert_eq!(status, 200, "{v}");
    v
}

/// (prompt computed, prompt cached, completion) of a gateway answer's `usage`.
fn answered_tokens(v: &Value) -> (u64, u64, u64) {
    let u = &v["usage"];
    let cached = u["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0);
    (u["prompt_tokens"].as_u64().unwrap() - cached, cached, u["completion_tokens"].as_u64().unwrap())
}

fn stats_tokens(s: &EndpointStats) -> (u64, u64, u64) {
    tokens(&s.usage())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_behind_one_gateway_keep_each_problem_on_one_server_and_lose_none_when_one_dies() {
    let mut servers = three().await;
    let urls: Vec<String> = servers.iter().map(LlamaServer::url).collect();
    let g = HttpGenerator::connect(fleet_config(&urls, 2)).await.expect("connects");
    let strict = HttpGenerator::connect(fleet_config(&urls, 0)).await.expect("connects");
    let front = format!("{}/v1/chat/completions", start_with(Backend::Http(g.clone()), ServerConfig::default()).await);
    // From here on the servers count only this test's requests through `g`.
    let start = counters_of(&servers).await;
    let logs: Vec<usize> = servers.iter().map(LlamaServer::log_len).collect();
    let http = reqwest::Client::new();
    let qs = questions(6);
    let mut answers = Vec::new();

    // Affinity: a problem asked twice is computed by one server both times, and the second
    // time that server's cache holds the whole prompt (each request recomputes its last token).
    let mut home = Vec::new();
    for (i, q) in qs.iter().enumerate() {
        let mut went = Vec::new();
        for seed in [1, 2] {
            let before = counters_of(&servers).await;
            let v = ask(&http, &front, q, "sc-2", seed, 16).await;
            let moved: Vec<Usage> = before.iter().zip(counters_of(&servers).await).map(|(b, a)| b.until(a)).collect();
            let busy: Vec<usize> = (0..3).filter(|&k| tokens(&moved[k]) != (0, 0, 0)).collect();
            assert_eq!(busy.len(), 1, "question {i}, seed {seed}: one server computes it all: {moved:?}");
            assert_eq!(answered_tokens(&v), tokens(&moved[busy[0]]), "question {i}: the gateway's usage is that server's count");
            went.push((busy[0], moved[busy[0]]));
            answers.push(v);
        }
        assert_eq!(went[0].0, went[1].0, "question {i}: the repeat goes where the first went");
        let repeat = went[1].1;
        assert!(repeat.prompt_computed <= 2 && repeat.prompt_reused > 0, "question {i}: the repeat hits the cache of server {}: {repeat:?}", went[1].0);
        home.push(went[0].0);
    }
    let used: BTreeSet<usize> = home.iter().copied().collect();
    assert!(used.len() >= 2, "different problems spread over the servers: {home:?}");
    // What ponder says each server reported is what each server counted.
    let now = counters_of(&servers).await;
    for (k, s) in g.endpoint_stats().iter().enumerate() {
        assert_eq!(stats_tokens(s), tokens(&start[k].until(now[k])), "server {k}: {s:?}");
        assert_eq!(s.failed, 0);
    }

    // One server killed while it generates for a burst of every problem at once.
    let victim = (0..3).max_by_key(|k| home.iter().filter(|h| *h == k).count()).unwrap();
    let answered_before = g.endpoint_stats()[victim].answered;
    let burst: Vec<_> = qs
        .iter()
        .map(|q| {
            let (http, front, q) = (http.clone(), front.clone(), q.clone());
            tokio::spawn(async move { ask(&http, &front, &q, "sc-3", 3, 48).await })
        })
        .collect();
    while !(g.endpoint_stats()[victim].answered > answered_before && generating(&servers[victim]).await) {
        assert!(!burst.iter().all(|b| b.is_finished()), "the burst ended before server {victim} was killed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    servers[victim].kill();
    for b in burst {
        let v = b.await.expect("the client task");
        assert_eq!((v["ponder"]["n_samples"].as_u64(), v["ponder"]["n_failed"].as_u64()), (Some(3), Some(0)), "every sample answered through the others: {v}");
        answers.push(v);
    }

    let stats = g.endpoint_stats();
    let survivors: Vec<usize> = (0..3).filter(|&k| k != victim).collect();
    let end: Vec<Counters> = futures::future::join_all(survivors.iter().map(|&k| servers[k].counters())).await;
    for (&k, e) in survivors.iter().zip(&end) {
        let counted = start[k].until(*e);
        assert_eq!(stats_tokens(&stats[k]), tokens(&counted), "survivor {k}: exactly what it counted: {:?}", stats[k]);
        assert_eq!(stats[k].lost, 0, "{:?}", stats[k]);
        // The log says what the counters say (so the victim's log can stand in for its counters).
        let (tasks, prompt, predicted) = servers[k].logged_since(logs[k]);
        assert_eq!((tasks, prompt, predicted), (stats[k].answered, counted.prompt_computed, counted.completion), "survivor {k}'s log");
    }
    // The victim: ponder credits it with no more than it did before it died; what it did
    // for attempts cut off with it (answers never received) is at most their max_tokens each.
    let v = &stats[victim];
    let (tasks, prompt, predicted) = servers[victim].logged_since(logs[victim]);
    assert!(v.lost >= 1, "the kill cut requests off: {v:?}");
    assert!(v.answered <= tasks && tasks <= v.answered + v.lost, "victim: {tasks} tasks logged, {v:?}");
    assert!(v.prompt_computed <= prompt && v.completion <= predicted, "victim logged {prompt}/{predicted}: {v:?}");
    assert!(predicted - v.completion <= 48 * v.lost, "victim logged {predicted} predicted: {v:?}");
    if tasks == v.answered {
        assert_eq!((v.prompt_computed, v.completion), (prompt, predicted), "victim: every task it finished was received");
    }
    // Nothing counted twice: the gateway's answers add up to the endpoints' reports, and the
    // attempts lost are the answers' unreported count.
    let sum = |f: fn(&(u64, u64, u64)) -> u64| answers.iter().map(|a| f(&answered_tokens(a))).sum::<u64>();
    let reported = stats.iter().map(stats_tokens).fold((0, 0, 0), |a, s| (a.0 + s.0, a.1 + s.1, a.2 + s.2));
    assert_eq!((sum(|t| t.0), sum(|t| t.1), sum(|t| t.2)), reported);
    let unreported: u64 = answers.iter().map(|a| a["ponder"]["usage"]["unreported"].as_u64().unwrap_or(0)).sum();
    assert_eq!(unreported, stats.iter().map(|s| s.lost).sum::<u64>());

    // Without retries a call routed to the dead server fails, naming it; with them, the next
    // server answers and the dead one is asked last.
    let dead = format!("127.0.0.1:{}", servers[victim].port);
    let req = || ponder_core::SampleRequest { messages: question(), n: 1, params: sampling(8), first_index: 0 };
    let got = strict.pinned(victim).unwrap().sample(req()).await.unwrap().collect().await.unwrap();
    assert!(got.samples.is_empty());
    let msg = got.failures[0].1.to_string();
    assert!(msg.contains(&dead) && msg.contains("could not connect"), "{msg}");
    assert_eq!(got.usage.unreported, 0, "a refused connection computed nothing");
    assert_eq!(strict.endpoint_stats()[victim].refused, 1);
    let got = g.pinned(victim).unwrap().sample(req()).await.unwrap().collect().await.unwrap();
    assert_eq!(got.samples.len(), 1, "{:?}", got.failures);
    assert!(got.usage.is_exact());
}

/// `ponder serve` with the fleet in its config file's `[upstream]` and `--upstream-retries`
/// over it: it names all three servers and answers.
async fn serve_on_three_from_a_config_file(urls: &[String]) {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ponder.toml");
    let endpoints: Vec<String> = urls.iter().map(|u| format!("{{ url = \"{u}\" }}")).collect();
    std::fs::write(&cfg, format!("[upstream]\nendpoints = [{}]\nretries = 0\n", endpoints.join(", "))).unwrap();
    let mut child = Command::new(super::cli::ponder_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream-retries", "3", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ponder serve starts");
    let stderr = child.stderr.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stderr).lines().map_while(Result::ok).find(|l| l.contains(" on http://") || l.starts_with("ponder: error"))
    })
    .await
    .unwrap()
    .expect("ponder serve says where it listens");
    assert!(urls.iter().all(|u| line.contains(u.as_str())), "all three servers: {line}");
    let front = line.split(" on ").last().unwrap().trim().to_string();
    let http = reqwest::Client::new();
    let models: Value = http.get(format!("{front}/models")).send().await.unwrap().json().await.unwrap();
    let body = json!({ "model": models["data"][0]["id"], "messages": [{ "role": "user", "content": "What is 2 + 3?" }],
        "max_tokens": 8, "ponder": { "strategy": "sc", "budget": 2 } });
    let v: Value = http.post(format!("{front}/chat/completions")).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["ponder"]["n_samples"], 2, "{v}");
    let _ = child.kill();
    let _ = child.wait();
}

/// An upstream line `ponder eval` prints at the end: its URL and stats.
fn upstream_lines(out: &str) -> Vec<EndpointStats> {
    out.lines()
        .filter_map(|l| l.strip_prefix("upstream "))
        .map(|l| {
            let url = l.split(' ').next().unwrap().to_string();
            let n: Vec<u64> = l[url.len()..]
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            let [answered, failed, lost, refused, prompt_computed, prompt_reused, completion] = n[..] else { panic!("upstream line {l:?}") };
            EndpointStats { url, answered, failed, lost, refused, prompt_computed, prompt_reused, completion }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_on_a_fleet_of_three_completes_when_one_dies_and_its_resume_adds_nothing() {
    let mut servers = three().await;
    let urls: Vec<String> = servers.iter().map(LlamaServer::url).collect();
    serve_on_three_from_a_config_file(&urls).await;
    // Connecting generates on every server (capability checks), the same on each.
    let c0 = servers[0].counters().await;
    drop(HttpGenerator::connect(HttpConfig::single(&urls[0])).await.expect("connects"));
    // Its prompt tokens as computed + cached: the split moves with the cache, the sum does not.
    let connecting = c0.until(servers[0].counters().await);
    let connecting = (connecting.prompt_computed + connecting.prompt_reused, connecting.completion);
    let before = counters_of(&servers).await;
    let logs: Vec<usize> = servers.iter().map(LlamaServer::log_len).collect();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.sqlite");
    // Slowed down (a pause after each stored unit) so units remain when the kill lands.
    let run = eval(&urls, &store, &["--limit", "8", "--concurrency", "2"], &[("PONDER_TEST_UNIT_PAUSE_MS", "700")]);
    // Killed once it has finished a sample of the run and is generating another.
    let kill_midway = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let done = before[1].until(servers[1].counters().await).completion > connecting.1;
            if done && generating(&servers[1]).await {
                break;
            }
        }
        servers[1].kill();
    };
    tokio::pin!(run);
    let (out, v) = tokio::select! {
        (out, _) = &mut run => panic!("the run ended before server 1 had work to lose: {}", text(&out)),
        () = kill_midway => run.await,
    };
    assert!(out.status.success(), "{}", text(&out));
    let records = v[0]["records"].as_array().expect("records");
    assert_eq!(records.len(), 8, "every unit answered: {v}");
    assert!(records.iter().all(|r| r["n_samples"] == 3), "no sample lost: {v}");

    // Each survivor counted exactly what ponder says it reported (connecting aside); the
    // killed one at least what ponder credits it with; the run's stored usage is their sum.
    let stats = upstream_lines(&text(&out));
    assert_eq!(stats.iter().map(|s| s.url.as_str()).collect::<Vec<_>>(), urls, "{}", text(&out));
    let prompt = |u: &Usage| u.prompt_computed + u.prompt_reused;
    for k in [0, 2] {
        let counted = before[k].until(servers[k].counters().await);
        let s = &stats[k];
        assert_eq!((prompt(&s.usage()) + connecting.0, s.completion + connecting.1), (prompt(&counted), counted.completion), "survivor {k}: {s:?}");
    }
    let (_, _, predicted) = servers[1].logged_since(logs[1]);
    assert!(stats[1].completion + connecting.1 <= predicted, "killed: logged {predicted}, {:?}", stats[1]);
    let ponder = summed(&v);
    let reported: u64 = stats.iter().map(|s| s.completion).sum();
    assert_eq!(ponder.completion, reported, "the stored usage is what the servers reported, once");
    assert_eq!(ponder.unreported, stats.iter().map(|s| s.lost).sum::<u64>());
    assert!(stats[0].answered > 0 && stats[2].answered > 0, "the survivors share the run: {stats:?}");
    assert!(stats[1].answered > 0 && stats[1].failed > 0, "the kill landed mid-run, between calls to it: {:?}", stats[1]);

    // `--resume` of the complete run adds nothing: no unit runs, the survivors compute only
    // what connecting costs.
    let id = text(&out).lines().find_map(|l| l.strip_prefix("run ")?.split(' ').next()?.parse::<i64>().ok()).expect("run id");
    let survivors = [urls[0].clone(), urls[2].clone()];
    let c = [servers[0].counters().await, servers[2].counters().await];
    let (out, _) = eval(&survivors, &store, &["--resume", &id.to_string()], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("0 of 8 units to run"), "{}", text(&out));
    assert_eq!(c[0].until(servers[0].counters().await).completion, connecting.1);
    assert_eq!(c[1].until(servers[2].counters().await).completion, connecting.1);
}
