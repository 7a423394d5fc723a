# Issue 15, item 6: `ponder eval` on a fleet of 1, 2 and 3 llama-servers, the same problems
# each time; throughput, and each server's share of the work by its own counters.
#   python3 scripts/fleet-bench.py LLAMA_SERVER PONDER MODEL.gguf N OUT.json [SLOTS] [CONCURRENCY]
# Each configuration starts fresh servers (ports 18811-18813; SLOTS slots of 1024 tokens,
# default 2; one thread each), so no run finds another's prompts cached. `sc` at budget 4,
# max_tokens 64, arith:1, CONCURRENCY units at once (default 6). Prints and writes JSON.
import json, os, re, subprocess, sys, tempfile, time, urllib.request

LS, PONDER, MODEL, N, OUT = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
SLOTS = int(sys.argv[6]) if len(sys.argv) > 6 else 2
CONC = int(sys.argv[7]) if len(sys.argv) > 7 else 6
PORTS = [18811, 18812, 18813]
TMP = tempfile.mkdtemp(prefix="ponder-fleet-")


def get(url):
    return urllib.request.urlopen(url, timeout=60).read().decode()


def counters(port):
    t = get(f"http://127.0.0.1:{port}/metrics")
    v = {l.split()[0]: float(l.split()[1]) for l in t.splitlines() if l.startswith("llamacpp:")}
    return {"prompt_computed": int(v["llamacpp:prompt_tokens_total"]), "prompt_cached": int(v["llamacpp:prompt_tokens_cached_total"]),
            "predicted": int(v["llamacpp:tokens_predicted_total"])}


def start(port):
    p = subprocess.Popen([LS, "-m", MODEL, "--host", "127.0.0.1", "--port", str(port), "--parallel", str(SLOTS),
                          "--ctx-size", str(1024 * SLOTS), "--threads", "1", "--threads-batch", "1", "--metrics", "--no-webui"],
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(TMP, f"llama-server-{port}.log"), "w"),
                         start_new_session=True)
    for _ in range(600):
        try:
            if json.loads(get(f"http://127.0.0.1:{port}/health")).get("status") == "ok":
                return p
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"llama-server on {port} not healthy")


def loadavg():
    return os.getloadavg()[0]


runs = []
for k in [int(x) for x in os.environ.get("FLEET_SIZES", "1,2,3").split(",")]:
    servers = [start(p) for p in PORTS[:k]]
    try:
        before = [counters(p) for p in PORTS[:k]]
        out = os.path.join(TMP, f"eval-{k}.json")
        cmd = [PONDER, "eval", "--dataset", "arith:1", "--limit", str(N), "--strategy", "sc", "--budget", "4", "--max-tokens", "64",
               "--concurrency", str(CONC), "--no-store", "--json", out]
        for p in PORTS[:k]:
            cmd += ["--upstream", f"http://127.0.0.1:{p}/v1"]
        load0 = loadavg()
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        open(os.path.join(TMP, f"eval-{k}.log"), "w").write(r.stdout + r.stderr)
        wall = time.time() - t0
        if r.returncode != 0:
            raise SystemExit(f"ponder eval failed:\n{r.stdout}\n{r.stderr}")
        after = [counters(p) for p in PORTS[:k]]
        records = json.load(open(out))[0]["records"]
        # ponder's own account of each upstream (the line `ponder eval` prints at the end).
        seen = {}
        for line in r.stderr.splitlines():
            if line.startswith("upstream "):
                url = line.split()[1]
                nums = [int(x) for x in re.findall(r"\d+", line[len("upstream ") + len(url):])]
                seen[url] = dict(zip(["answered", "failed", "lost", "refused", "prompt_computed", "prompt_cached", "completion"], nums))
        per = []
        for p, b, a in zip(PORTS[:k], before, after):
            url = f"http://127.0.0.1:{p}/v1"
            per.append({"url": url, "server": {f: a[f] - b[f] for f in a}, "ponder": seen.get(url)})
        predicted = sum(s["server"]["predicted"] for s in per)
        runs.append({
            "servers": k, "problems": N, "wall_s": round(wall, 1), "problems_per_min": round(60 * N / wall, 2),
            "completion_tokens_per_s": round(predicted / wall, 1), "correct": sum(1 for x in records if x["correct"]),
            "ponder_completion": sum(x["usage"]["completion"] for x in records),
            "ponder_unreported": sum(x["usage"].get("unreported", 0) for x in records),
            "load_avg_start": round(load0, 2), "load_avg_end": round(loadavg(), 2), "per_server": per,
        })
        print(json.dumps(runs[-1]), flush=True)
    finally:
        for s in servers:
            s.kill()
            s.wait()

result = {"bench": "fleet", "model": os.path.basename(MODEL), "strategy": "sc", "budget": 4, "max_tokens": 64, "dataset": "arith:1",
          "slots_per_server": SLOTS, "threads_per_server": 1, "concurrency": CONC, "cores": os.cpu_count(), "runs": runs}
with open(OUT, "w") as f:
    json.dump(result, f, indent=1)
    f.write("\n")
print(f"wrote {OUT}")
