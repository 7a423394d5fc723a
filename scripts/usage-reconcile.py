# Issue 15's usage check: N word problems, sc at budget 8, through `ponder serve` on a
# llama-server upstream; the gateway's summed usage against the server's own counters.
#   python3 scripts/usage-reconcile.py LLAMA_SERVER PONDER MODEL.gguf N [PONDER_CONFIG.toml]
# Ports 18777 (llama-server, 8 slots) and 18778 (the gateway); prints JSON.
import json, os, random, subprocess, sys, tempfile, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
LS, PONDER, MODEL = sys.argv[1], sys.argv[2], sys.argv[3]
N = int(sys.argv[4])
def get(url):
    return urllib.request.urlopen(url, timeout=600).read().decode()
def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=900).read())
def counters():
    t = get("http://127.0.0.1:18777/metrics")
    v = {l.split()[0]: float(l.split()[1]) for l in t.splitlines() if l.startswith("llamacpp:")}
    return v["llamacpp:prompt_tokens_total"], v["llamacpp:prompt_tokens_cached_total"], v["llamacpp:tokens_predicted_total"]
ls = subprocess.Popen([LS, "-m", MODEL, "--host", "127.0.0.1", "--port", "18777", "--parallel", "8", "--ctx-size", "16384",
                       "--metrics", "--no-webui", "-t", "2"], stdout=subprocess.DEVNULL, stderr=open(os.path.join(tempfile.gettempdir(), "ponder-reconcile-llama-server.log"), "w"))
gw = None
try:
    for _ in range(600):
        try:
            if json.loads(get("http://127.0.0.1:18777/health")).get("status") == "ok": break
        except Exception: time.sleep(0.2)
    args = ["--config", sys.argv[5]] if len(sys.argv) > 5 else ["--upstream", "http://127.0.0.1:18777/v1"]
    gw = subprocess.Popen([PONDER, "serve", "--listen", "127.0.0.1:18778"] + args,
                          stdout=subprocess.DEVNULL, stderr=open(os.path.join(tempfile.gettempdir(), "ponder-reconcile-gateway.log"), "w"))
    for _ in range(600):
        try: get("http://127.0.0.1:18778/health"); break
        except Exception: time.sleep(0.2)
    served = json.loads(get("http://127.0.0.1:18778/v1/models"))["data"][0]["id"]
    rng = random.Random(15)
    qs = []
    for i in range(N):
        a, b, c = rng.randint(2, 40), rng.randint(2, 40), rng.randint(2, 9)
        qs.append((f"Sam has {a} apples. He buys {b} more and gives away {c}. How many apples does he have now?", a + b - c))
    before = counters()
    t0 = time.time()
    def ask(q):
        return post("http://127.0.0.1:18778/v1/chat/completions", {"model": served, "ponder": {"strategy": "sc", "budget": 8}, "messages": [{"role": "user", "content": q[0]}],
                     "max_tokens": 96, "temperature": 0.7, "seed": 1})
    with ThreadPoolExecutor(2) as ex:
        outs = list(ex.map(ask, qs))
    wall = time.time() - t0
    time.sleep(1)
    after = counters()
    pc = sum(o["usage"]["prompt_tokens"] - o["usage"]["prompt_tokens_details"]["cached_tokens"] for o in outs)
    cached = sum(o["usage"]["prompt_tokens_details"]["cached_tokens"] for o in outs)
    comp = sum(o["usage"]["completion_tokens"] for o in outs)
    correct = sum(1 for o, q in zip(outs, qs) if str(o["ponder"].get("answer")) == str(q[1]))
    unrep = sum(o["ponder"]["usage"].get("unreported", 0) for o in outs)
    print(json.dumps({"problems": N, "correct": correct, "wall_s": round(wall, 1),
        "ponder": {"prompt_computed": pc, "prompt_cached": cached, "completion": comp, "unreported": unrep},
        "server": {"prompt_computed": after[0] - before[0], "prompt_cached": after[1] - before[1], "completion": after[2] - before[2]}}, indent=1))
finally:
    if gw: gw.kill()
    ls.kill()
