#!/usr/bin/env python3
"""Recomputes every figure of `ticketlake decide --format json` from its own `measured`
and `assumptions`, with the formulas of DESIGN.md ("Decision model (formulas)"), written
again here without sharing code with ticketlake. Not part of the tests.

    ticketlake decide --lake /tmp/lake --format json > /tmp/decide.json
    python3 benches/decide_check.py /tmp/decide.json

Exit code 0 when every figure agrees to 1e-6.
"""

import json
import math
import sys


def erlang_c(n, a):
    if n <= a:
        return 1.0
    b = 1.0
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    return n * b / (n - a * (1 - b))


def level(n, a, t, target):
    if a <= 0:
        return 1.0
    if n <= a:
        return 0.0
    return 1 - erlang_c(n, a) * math.exp(-(n - a) * target / t)


def main():
    d = json.load(open(sys.argv[1]))
    A = d["assumptions"]
    M = d["measured"]
    bh, fh, occ, t = A["business_hours_per_month"], A["fte_hours_per_month"], A["occupancy"], A["triage_min"]
    r, ag, as_, hop, m = (M[k]["value"] for k in ("r", "aht_g", "aht_s", "hop_bh", "m"))
    schools = M["per_school"]
    G = sum(s["G"] for s in schools)
    S = sum(s["S"] for s in schools)
    o, f = A["onsite_share"], A["central_aht_factor"]

    def W(minutes):
        return minutes / 60 / (fh * occ)

    def erlangs(n):
        return n / bh * t / 60

    def staff(n):
        a = erlangs(n)
        if a <= 0:
            return 0
        k = math.floor(a) + 1
        while level(k, a, t, A["tto_target_min"]) < A["service_level"] - 0.005:
            k += 1
        return k

    def Q(n):
        return staff(n) * bh / fh

    def facing(minutes, n):
        w, q = W(minutes), Q(n)
        fte = max(w, q)
        present = max(staff(n), math.floor(fte * fh / bh + 1e-9))
        return w, q, fte, (n, level(present, erlangs(n), t, A["tto_target_min"]))

    expected = {}
    w, q, fg, sl = facing(G * ag + m * G * t, G)
    parts = [sl]
    fs = 0
    for s in schools:
        _, _, fte, x = facing(s["S"] * as_ + m * s["S"] * t, s["S"])
        fs += fte
        parts.append(x)
    expected["direct"] = dict(group_tickets_per_month=G, fte_group_workload=w, fte_group_queue=q, fte_group=fg,
                              fte_schools=fs, added_delay_bh=0.0, parts=parts)
    w = W((1 - r) * G * ag)
    parts, fs = [], 0
    for s in schools:
        _, _, fte, x = facing(s["S"] * as_ + r * s["G"] * ag + (1 - r) * s["G"] * t, s["S"] + s["G"])
        fs += fte
        parts.append(x)
    expected["n_plus_1"] = dict(group_tickets_per_month=(1 - r) * G, fte_group_workload=w, fte_group_queue=0.0,
                                fte_group=w, fte_schools=fs, added_delay_bh=hop, parts=parts)
    w, q, fg, sl = facing(G * ag + S * (1 - o) * f * as_ + S * o * t, G + S * (1 - o))
    presence = A["onsite_presence"] * bh / fh
    fs = sum(max(presence, W(s["S"] * o * as_)) for s in schools)
    expected["central"] = dict(group_tickets_per_month=G + S, fte_group_workload=w, fte_group_queue=q, fte_group=fg,
                               fte_schools=fs, added_delay_bh=0.0, parts=[sl])
    problems, checked = [], 0
    for opt in d["options"]:
        e = expected[opt["option"]]
        e["fte_setup"] = A["setup_fte_months"][opt["option"]] / A["horizon_months"]
        e["fte_total"] = e["fte_group"] + e["fte_schools"] + e["fte_setup"]
        n = sum(x[0] for x in e["parts"])
        e["tto_service_level"] = sum(x[0] * x[1] for x in e["parts"]) / n if n > 0 else 1.0
        for k, v in e.items():
            if k == "parts":
                continue
            checked += 1
            if abs(opt[k] - v) > 1e-6 * max(1.0, abs(v)):
                problems.append(f"{opt['option']} {k}: ticketlake {opt[k]}, reference {v}")
    for row in d["sensitivity"]:
        checked += 1
        if abs(row["group_volume"] - G * row["k"]) > 1e-6 * max(1.0, G * row["k"]):
            problems.append(f"sensitivity k={row['k']}: group_volume {row['group_volume']}")
    print(f"{checked} figures compared, {len(problems)} differ")
    for p in problems:
        print("  " + p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
