#!/usr/bin/env python3
# Memory held at the Memory store's user cap (deploy.store.users): starts
# recserve --stage=all on CONFIG with the cap set (0 keeps the default
# 1,000,000), posts N new user ids (an impression and a follow each, in
# batches of 5,000 users) and prints the process's RSS when ready and after.
#
#   hack/bench-caps.py RECSERVE CONFIG CAP N [PORT]
#
# BENCHMARKS.md ("Memory at the caps") ran it on the bench-quality world's
# config (make bench-quality writes it).
import json, subprocess, sys, tempfile, time, urllib.request

recserve, config_path, cap, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
port = int(sys.argv[5]) if len(sys.argv) > 5 else 18190
work = tempfile.mkdtemp(prefix="bench-caps-")
c = json.load(open(config_path))
if cap > 0:
    c["deploy"]["store"]["users"] = cap
cfg = work + "/config.json"
json.dump(c, open(cfg, "w"))
p = subprocess.Popen([recserve, "--config", cfg, "--state-dir", work + "/state",
                      "--http-port", str(port), "--grpc-port", str(port + 1)],
                     stdout=open(work + "/recserve.log", "w"), stderr=subprocess.STDOUT)


def rss_mib():
    for line in open("/proc/%d/status" % p.pid):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024


try:
    for _ in range(1200):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=1)
            break
        except Exception:
            time.sleep(0.5)
    ready, t0 = rss_mib(), time.time()
    for start in range(0, n, 5000):
        events = []
        for u in range(start, min(n, start + 5000)):
            events.append({"user": "flood-%d" % u, "item": "i%d" % (u % 20000), "type": "impression"})
            events.append({"user": "flood-%d" % u, "author": "a%d" % (u % 500), "type": "follow"})
        req = urllib.request.Request("http://127.0.0.1:%d/v1/events" % port, data=json.dumps({"events": events}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=60).read()
    print(json.dumps({"cap": cap or "default", "users": n, "rss_ready_mib": ready, "rss_after_mib": rss_mib(),
                      "seconds": round(time.time() - t0, 1)}))
finally:
    p.terminate()
    p.wait()
