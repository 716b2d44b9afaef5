#!/usr/bin/env python3
"""Turns bench/run.sh's results (JSON lines) into the markdown tables of BENCHMARKS.md."""
import json
import sys

TARGETS = ["rpc-json", "rpc-protobuf", "nats", "mqtt"]
NAMES = {"rpc-json": "rpc-crypto JSON", "rpc-protobuf": "rpc-crypto Protobuf",
         "rpc-secure": "rpc-crypto secure", "nats": "NATS", "mqtt": "Mosquitto"}
# Fan-out scenarios, in the order of the "every run" table; "a-secure" is (a) with the
# subscribers on the secure transport.
FANOUT = ["a", "a-secure", "b", "c"]
GENERATOR_LIMIT = 0.8


def load(path):
    runs = []
    with open(path) as f:
        for line in f:
            entry = json.loads(line)
            run = entry["run"]
            run["scenario"] = entry["scenario"]
            runs.append(run)
    return runs


def ok(run):
    return not run.get("error") and run["lost"] == 0 and run["p99_ms"] <= 50


def best_rate(runs, scenario, target):
    """The highest delivered rate with zero loss and p99 <= 50 ms."""
    good = [r for r in runs if r["scenario"] == scenario and r["target"] == target and ok(r)]
    return max(good, key=lambda r: r["delivered_per_sec"], default=None)


def find(runs, scenario, target, **match):
    for r in runs:
        if r["scenario"] == scenario and r["target"] == target and not r.get("error") \
                and all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def fmt(value, digits=0):
    if value is None:
        return "–"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def ratio(ours, peer):
    if ours is None or peer is None or peer == 0:
        return "–"
    return f"{ours / peer:.2f}×"


def headline(runs):
    rows = []

    def row(label, better, values, digits=0):
        rows.append((label, better, values, digits))

    for scenario, size in (("a", "64 B"), ("b", "1 KiB")):
        values = {}
        for t in TARGETS:
            best = best_rate(runs, scenario, t)
            values[t] = best["delivered_per_sec"] if best else None
        row(f"({scenario}) 100 subs, {size}: highest deliveries/s with zero loss, p99 ≤ 50 ms",
            "higher", values)
    row("server CPU s per million deliveries, 100 subs × 1,000 msg/s, 64 B", "lower",
        {t: (find(runs, "a", t, rate=1000) or {}).get("server_cpu_s_per_million") for t in TARGETS}, 1)
    for subs, rate in ((1000, 100), (5000, 10)):
        row(f"(c) {subs:,} subs × {rate} msg/s: p99 ms", "lower",
            {t: (find(runs, "c", t, subscribers=subs) or {}).get("p99_ms") for t in TARGETS}, 1)
    row("(d) RSS KiB per idle connection (10,000)", "lower",
        {t: (find(runs, "d", t) or {}).get("kib_per_connection") for t in TARGETS}, 1)
    row("(e) sessions established and subscribed per second", "higher",
        {t: (find(runs, "e", t) or {}).get("sessions_per_sec") for t in TARGETS})

    out = ["| | better | " + " | ".join(NAMES[t] for t in TARGETS)
           + " | JSON ÷ NATS | JSON ÷ Mosquitto | Protobuf ÷ NATS | Protobuf ÷ Mosquitto |",
           "|---|---|" + "---|" * (len(TARGETS) + 4)]
    for label, better, v, digits in rows:
        cells = [fmt(v[t], digits) for t in TARGETS]
        ratios = [ratio(v["rpc-json"], v["nats"]), ratio(v["rpc-json"], v["mqtt"]),
                  ratio(v["rpc-protobuf"], v["nats"]), ratio(v["rpc-protobuf"], v["mqtt"])]
        out.append(f"| {label} | {better} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(out)


def encrypted(runs):
    """rpc-crypto secure (a-secure) beside rpc-crypto JSON (a): the cost of the encrypted fan-out."""
    if not any(r["scenario"] == "a-secure" for r in runs):
        return None
    secure = best_rate(runs, "a-secure", "rpc-secure")
    json_ = best_rate(runs, "a", "rpc-json")
    rows = [
        ("100 subs, 64 B: highest deliveries/s with zero loss, p99 ≤ 50 ms", "higher",
         (secure or {}).get("delivered_per_sec"), (json_ or {}).get("delivered_per_sec"), 0),
        ("server CPU s per million deliveries, 100 subs × 1,000 msg/s, 64 B", "lower",
         (find(runs, "a-secure", "rpc-secure", rate=1000) or {}).get("server_cpu_s_per_million"),
         (find(runs, "a", "rpc-json", rate=1000) or {}).get("server_cpu_s_per_million"), 1),
    ]
    out = ["| | better | rpc-crypto secure | rpc-crypto JSON | secure ÷ JSON |",
           "|---|---|---|---|---|"]
    for label, better, ours, theirs, digits in rows:
        out.append(f"| {label} | {better} | {fmt(ours, digits)} | {fmt(theirs, digits)} "
                   f"| {ratio(ours, theirs)} |")
    return "\n".join(out)


def details(runs):
    out = []
    fanout = sorted((r for r in runs if r["scenario"] in FANOUT),
                    key=lambda r: FANOUT.index(r["scenario"]))
    if fanout:
        out += ["| scenario | server | subs × msg/s | size | delivered/s | lost | disconnects "
                "| p50 ms | p99 ms | p999 ms | max ms | server CPU s/M | generator CPU |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in fanout:
            if r.get("error"):
                out.append(f"| {r['scenario']} | {NAMES[r['target']]} | run failed | | | | | | | | | | |")
                continue
            gen = r["generator_cpu"]
            flag = " (saturated)" if gen > GENERATOR_LIMIT else ""
            out.append(
                f"| {r['scenario']} | {NAMES[r['target']]} | {r['subscribers']:,} × {r['rate']:,} "
                f"| {r['size']} | {fmt(r['delivered_per_sec'])} | {r['lost']:,} | {r['disconnects']} "
                f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['p999_ms']:.2f} | {r['max_ms']:.2f} "
                f"| {fmt(r['server_cpu_s_per_million'], 2)} | {gen * 100:.0f}%{flag} |")
    idle = [r for r in runs if r["scenario"] == "d" and not r.get("error")]
    if idle:
        out += ["", "| server | idle connections | RSS before KiB | RSS after KiB | KiB per connection |",
                "|---|---|---|---|---|"]
        for r in idle:
            out.append(f"| {NAMES[r['target']]} | {r['connections']:,} | {r['rss_before_kib']:,} "
                       f"| {r['rss_after_kib']:,} | {r['kib_per_connection']:.1f} |")
    connects = [r for r in runs if r["scenario"] == "e" and not r.get("error")]
    if connects:
        out += ["", "| server | sessions | concurrency | seconds | sessions/s | generator CPU |",
                "|---|---|---|---|---|---|"]
        for r in connects:
            out.append(f"| {NAMES[r['target']]} | {r['sessions']:,} | {r['concurrency']} "
                       f"| {r['seconds']:.2f} | {fmt(r['sessions_per_sec'])} | {r['generator_cpu'] * 100:.0f}% |")
    return "\n".join(out)


def main():
    runs = load(sys.argv[1])
    print("## Headline\n")
    print(headline(runs))
    table = encrypted(runs)
    if table:
        print("\n## Encrypted fan-out\n")
        print(table)
    print("\n## Every run\n")
    print(details(runs))


if __name__ == "__main__":
    main()
